#pragma once

// Which frames of a video to use, as qwen-vl-utils (QwenLM/Qwen2.5-VL
// qwen-vl-utils/src/qwen_vl_utils/vision_process.py: smart_nframes and fetch_video) picks them:
// a frame count from the target fps, clamped and floored to a multiple of FRAME_FACTOR, then
// indices torch.linspace(0, total - 1, nframes).round(). Indices are decoded-frame numbers, not
// timestamps, as decord and torchvision index them.

#include <cstdint>
#include <optional>
#include <vector>

namespace glimpse::video {

// qwen-vl-utils constants.
inline constexpr double kDefaultFps = 2.0;          // FPS
inline constexpr std::int64_t kFrameFactor = 2;     // FRAME_FACTOR
inline constexpr std::int64_t kFpsMinFrames = 4;    // FPS_MIN_FRAMES
inline constexpr std::int64_t kFpsMaxFrames = 768;  // FPS_MAX_FRAMES

// The "fps" / "nframes" / "min_frames" / "max_frames" keys of a qwen-vl-utils video element.
// Give at most one of fps and nframes; with neither, fps is kDefaultFps.
struct FrameSampling {
  std::optional<double> fps;
  std::optional<std::int64_t> nframes;
  std::int64_t min_frames = kFpsMinFrames;
  std::optional<std::int64_t> max_frames;  // default min(FPS_MAX_FRAMES, total_frames)
};

// smart_nframes. Throws InputError when both fps and nframes are set, when a value is not
// positive, or when the result falls outside [FRAME_FACTOR, total_frames] (a video of one frame).
std::int64_t smart_nframes(const FrameSampling& sampling, std::int64_t total_frames,
                           double video_fps);

// torch.linspace(0, total_frames - 1, nframes).round().long(), with torch's float32 arithmetic.
std::vector<std::int64_t> linspace_indices(std::int64_t total_frames, std::int64_t nframes);

// Both together: the decoded-frame indices to keep.
std::vector<std::int64_t> sample_frame_indices(const FrameSampling& sampling,
                                               std::int64_t total_frames, double video_fps);

}  // namespace glimpse::video
