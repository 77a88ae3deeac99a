#include "glimpse/video/sampling.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "glimpse/core/error.h"

namespace glimpse::video {
namespace {

// qwen-vl-utils round_by_factor / ceil_by_factor / floor_by_factor on Python numbers.
std::int64_t round_by_factor(double x, std::int64_t f) {
  return static_cast<std::int64_t>(std::nearbyint(x / static_cast<double>(f))) * f;
}
std::int64_t ceil_by_factor(double x, std::int64_t f) {
  return static_cast<std::int64_t>(std::ceil(x / static_cast<double>(f))) * f;
}
std::int64_t floor_by_factor(double x, std::int64_t f) {
  return static_cast<std::int64_t>(std::floor(x / static_cast<double>(f))) * f;
}

}  // namespace

std::int64_t smart_nframes(const FrameSampling& s, std::int64_t total_frames, double video_fps) {
  if (s.fps && s.nframes) throw InputError("video sampling: give either fps or nframes, not both");
  if (total_frames <= 0) throw InputError("video has no frames");
  std::int64_t nframes = 0;
  if (s.nframes) {
    if (*s.nframes <= 0) {
      throw InputError("video sampling: nframes must be positive, found " +
                       std::to_string(*s.nframes));
    }
    nframes = round_by_factor(static_cast<double>(*s.nframes), kFrameFactor);
  } else {
    const double fps = s.fps.value_or(kDefaultFps);
    if (!(fps > 0.0) || !std::isfinite(fps)) {
      throw InputError("video sampling: fps must be a positive number, found " +
                       std::to_string(fps));
    }
    if (!(video_fps > 0.0) || !std::isfinite(video_fps)) {
      throw InputError("video sampling: the video's frame rate is unknown or not positive");
    }
    const std::int64_t min_frames = ceil_by_factor(static_cast<double>(s.min_frames), kFrameFactor);
    const std::int64_t max_frames = floor_by_factor(
        static_cast<double>(s.max_frames.value_or(std::min(kFpsMaxFrames, total_frames))),
        kFrameFactor);
    // Python: min(min(max(nframes, min_frames), max_frames), total_frames) on floats and ints.
    double n = static_cast<double>(total_frames) / video_fps * fps;
    n = std::max(n, static_cast<double>(min_frames));
    n = std::min(n, static_cast<double>(max_frames));
    n = std::min(n, static_cast<double>(total_frames));
    nframes = floor_by_factor(n, kFrameFactor);
  }
  if (nframes < kFrameFactor || nframes > total_frames) {
    throw InputError("video sampling: " + std::to_string(nframes) +
                     " frames requested, but it must lie in [" + std::to_string(kFrameFactor) +
                     ", " + std::to_string(total_frames) + "] (the video has " +
                     std::to_string(total_frames) + " frames)");
  }
  return nframes;
}

std::vector<std::int64_t> linspace_indices(std::int64_t total_frames, std::int64_t nframes) {
  if (total_frames <= 0 || nframes <= 0) return {};
  const at::Tensor idx =
      at::linspace(0.0, static_cast<double>(total_frames - 1), nframes, at::kFloat)
          .round()
          .to(at::kLong)
          .contiguous();
  const std::int64_t* p = idx.data_ptr<std::int64_t>();
  return std::vector<std::int64_t>(p, p + nframes);
}

std::vector<std::int64_t> sample_frame_indices(const FrameSampling& sampling,
                                               std::int64_t total_frames, double video_fps) {
  return linspace_indices(total_frames, smart_nframes(sampling, total_frames, video_fps));
}

}  // namespace glimpse::video
