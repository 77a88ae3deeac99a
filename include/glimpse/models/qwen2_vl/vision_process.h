#pragma once

// The Qwen authors' video preparation, qwen-vl-utils (QwenLM/Qwen2.5-VL
// qwen-vl-utils/src/qwen_vl_utils/vision_process.py, Feb 2025): sample frames (smart_nframes),
// then resize every frame to a per-frame pixel budget derived from VIDEO_TOTAL_PIXELS, before the
// image processor's own smart_resize. One difference: qwen-vl-utils resizes with torchvision's
// antialiased bicubic; we use Pillow's bicubic, the same separable filter with another
// fixed-point rounding, so frames can differ by a level or so.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/models/qwen2_vl/image_processing.h"
#include "glimpse/video/decoder.h"
#include "glimpse/video/sampling.h"
#include "glimpse/vision/image.h"

namespace glimpse::models::qwen2_vl {

inline constexpr std::int64_t kImageFactor = 28;                // IMAGE_FACTOR
inline constexpr std::int64_t kVideoMinPixels = 128 * 28 * 28;  // VIDEO_MIN_PIXELS
inline constexpr std::int64_t kVideoMaxPixels = 768 * 28 * 28;  // VIDEO_MAX_PIXELS
inline constexpr std::int64_t kMinPixels = 4 * 28 * 28;         // MIN_PIXELS
inline constexpr std::int64_t kMaxPixels = 16384 * 28 * 28;     // MAX_PIXELS

// VIDEO_TOTAL_PIXELS: int(float($VIDEO_MAX_PIXELS)) when set, else int(128000 * 28 * 28 * 0.9).
// Throws InputError naming the variable when it is not a positive number.
std::int64_t video_total_pixels();

// qwen-vl-utils smart_resize: like transformers' but a side rounds up to at least `factor`
// instead of failing; the limits may be fractional. Throws InputError for an aspect ratio above
// 200 or a side that scales to zero.
HeightWidth qwen_vl_utils_smart_resize(std::int64_t height, std::int64_t width,
                                       std::int64_t factor = kImageFactor,
                                       double min_pixels = kMinPixels,
                                       double max_pixels = kMaxPixels);

// Keys of a qwen-vl-utils video element.
struct VideoOptions {
  video::FrameSampling sampling;        // fps / nframes / min_frames / max_frames
  double min_pixels = kVideoMinPixels;  // "min_pixels"
  std::optional<double> max_pixels;     // "max_pixels" (capped by the budget)
  std::optional<double> total_pixels;   // "total_pixels", default video_total_pixels()
  std::optional<HeightWidth> resized;   // "resized_height" / "resized_width"
  std::int64_t image_factor = kImageFactor;
};

// The size fetch_video resizes nframes frames of height x width to.
HeightWidth video_frame_size(std::int64_t height, std::int64_t width, std::int64_t nframes,
                             const VideoOptions& options);

struct FetchedVideo {
  std::vector<vision::Image> frames;  // resized, RGB
  std::vector<std::int64_t> indices;  // decoded-frame numbers kept
  video::VideoInfo info;
  double sample_fps = 0.0;  // pass to the processor as fps (second_per_grid_ts)
};

// fetch_video for a video file. Errors name the file.
FetchedVideo fetch_video(const std::string& path, const VideoOptions& options = {});

}  // namespace glimpse::models::qwen2_vl
