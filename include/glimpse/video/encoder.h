#pragma once

// Writes RGB frames as a video file through FFmpeg: for tests (known content and timestamps),
// debugging and visualisations. The container comes from the file extension (.mkv, .avi, .mp4).

#include <string>
#include <vector>

#include "glimpse/vision/image.h"

namespace glimpse::video {

struct EncodeOptions {
  std::string codec = "ffv1";  // FFmpeg encoder name; "ffv1" and "png" are lossless for RGB
  double fps = 25.0;           // frame i gets timestamp i / fps
};

// All frames must have the same size. An empty list writes a video stream with no frames
// (width and height then come from `empty_size`). Throws InputError or UnsupportedError.
void write_video(const std::string& path, const std::vector<vision::Image>& frames,
                 const EncodeOptions& options = {}, int empty_width = 16, int empty_height = 16);

}  // namespace glimpse::video
