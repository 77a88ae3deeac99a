#pragma once

// Video decoding through FFmpeg (libavformat, libavcodec, libswscale) to 8-bit RGB frames.
// Frames are numbered in decoding output order from 0, as decord and torchvision number them;
// the frame count comes from a demuxing pass over the stream's packets, not from metadata.
// Bad input (missing file, not a video, no video stream, no decoder for the codec, corrupt data,
// no decodable frame) throws InputError, FormatError or UnsupportedError with a one-line message
// that names the file. Every loop is bounded by the file's packets; nothing hangs.
// FFmpeg's own log is left as the host program set it (FFmpeg's default prints warnings to
// stderr); errors reach the caller from return codes. route_ffmpeg_log_to_glimpse() opts in to
// glimpse's log instead.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "glimpse/video/sampling.h"
#include "glimpse/vision/image.h"
#include "glimpse/vision/image_io.h"

namespace glimpse::video {

// Sends FFmpeg's log to glimpse's log at debug level instead of stderr, so that a corrupt file
// gives one error line rather than a page of decoder warnings. FFmpeg's log callback is
// process-wide (av_log_set_callback), so the library never installs it by itself: a program opts
// in with this call (the glimpse tool does at start-up). Safe to call more than once.
void route_ffmpeg_log_to_glimpse();

struct VideoInfo {
  int width = 0;
  int height = 0;
  std::int64_t frame_count = 0;  // packets of the video stream
  double fps = 0.0;              // average frame rate (decord's get_avg_fps)
  double duration = 0.0;         // seconds; 0 when the container does not say
  std::string codec;             // FFmpeg codec name, e.g. "h264"
};

struct VideoLimits {
  std::int64_t max_frame_pixels = vision::kMaxImagePixels;  // per frame, as for images
  std::int64_t max_frames = 10'000'000;                     // packets of the stream
};

// Opens the file and counts the frames. Throws on any of the bad inputs above.
VideoInfo probe_video(const std::string& path, const VideoLimits& limits = {});

// Applied to each kept frame as soon as it is decoded (for instance a resize), so that memory
// holds only what is kept.
using FrameTransform = std::function<vision::Image(vision::Image&&)>;

// Decodes the frames at `indices` (any order, repeats allowed) in one pass and returns them in
// the order of `indices`. An index past the last decodable frame gets the last decoded frame
// (a stream can hold fewer decodable frames than packets); an index past frame_count throws.
std::vector<vision::Image> read_frames(const std::string& path,
                                       const std::vector<std::int64_t>& indices,
                                       const FrameTransform& transform = {},
                                       const VideoLimits& limits = {});

struct SampledVideo {
  std::vector<vision::Image> frames;
  std::vector<std::int64_t> indices;
  VideoInfo info;
  double sample_fps = 0.0;  // nframes / total_frames * video_fps, as qwen-vl-utils returns it
};

// probe_video + sample_frame_indices + read_frames.
SampledVideo read_video(const std::string& path, const FrameSampling& sampling = {},
                        const FrameTransform& transform = {}, const VideoLimits& limits = {});

}  // namespace glimpse::video
