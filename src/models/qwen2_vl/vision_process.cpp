#include "glimpse/models/qwen2_vl/vision_process.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/vision/resize.h"

namespace glimpse::models::qwen2_vl {
namespace {

std::string dims(std::int64_t h, std::int64_t w) {
  return std::to_string(h) + "x" + std::to_string(w) + " (height x width)";
}

}  // namespace

std::int64_t video_total_pixels() {
  const char* env = std::getenv("VIDEO_MAX_PIXELS");
  if (env == nullptr) return static_cast<std::int64_t>(128000.0 * 28 * 28 * 0.9);
  char* end = nullptr;
  const double v = std::strtod(env, &end);
  if (end == env || *end != '\0' || !(v >= 1.0) || !std::isfinite(v) || v > 9e18) {
    throw InputError("environment variable VIDEO_MAX_PIXELS: expected a positive number, found '" +
                     std::string(env) + "'");
  }
  return static_cast<std::int64_t>(v);
}

HeightWidth qwen_vl_utils_smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                       double min_pixels, double max_pixels) {
  if (height <= 0 || width <= 0 || factor <= 0) {
    throw InputError("frame of " + dims(height, width) + " has no pixels");
  }
  const double ratio =
      static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width));
  if (ratio > 200) {
    throw InputError("frame of " + dims(height, width) + " has an aspect ratio above 200 (found " +
                     std::to_string(ratio) + ")");
  }
  const double f = static_cast<double>(factor);
  const double h = static_cast<double>(height);
  const double w = static_cast<double>(width);
  std::int64_t h_bar = std::max(factor, static_cast<std::int64_t>(std::nearbyint(h / f)) * factor);
  std::int64_t w_bar = std::max(factor, static_cast<std::int64_t>(std::nearbyint(w / f)) * factor);
  if (static_cast<double>(h_bar * w_bar) > max_pixels) {
    const double beta = std::sqrt((h * w) / max_pixels);
    h_bar = static_cast<std::int64_t>(std::floor(h / beta / f)) * factor;
    w_bar = static_cast<std::int64_t>(std::floor(w / beta / f)) * factor;
  } else if (static_cast<double>(h_bar * w_bar) < min_pixels) {
    const double beta = std::sqrt(min_pixels / (h * w));
    h_bar = static_cast<std::int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<std::int64_t>(std::ceil(w * beta / f)) * factor;
  }
  if (h_bar <= 0 || w_bar <= 0) {
    throw InputError("frame of " + dims(height, width) + " scales to " + dims(h_bar, w_bar) +
                     " under a budget of " + std::to_string(max_pixels) + " pixels");
  }
  return {h_bar, w_bar};
}

HeightWidth video_frame_size(std::int64_t height, std::int64_t width, std::int64_t nframes,
                             const VideoOptions& o) {
  if (o.resized) {
    return qwen_vl_utils_smart_resize(o.resized->height, o.resized->width, o.image_factor);
  }
  const double total = o.total_pixels ? *o.total_pixels : static_cast<double>(video_total_pixels());
  // max(min(VIDEO_MAX_PIXELS, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
  double max_pixels = std::max(std::min(static_cast<double>(kVideoMaxPixels),
                                        total / static_cast<double>(nframes) * video::kFrameFactor),
                               std::floor(o.min_pixels * 1.05));
  if (o.max_pixels) {
    if (*o.max_pixels > max_pixels) {
      GLIMPSE_LOG(Warn) << "video max_pixels " << *o.max_pixels << " exceeds the limit "
                        << max_pixels << "; using the limit";
    }
    max_pixels = std::min(*o.max_pixels, max_pixels);
  }
  return qwen_vl_utils_smart_resize(height, width, o.image_factor, o.min_pixels, max_pixels);
}

FetchedVideo fetch_video(const std::string& path, const VideoOptions& options) {
  FetchedVideo v;
  v.info = video::probe_video(path);
  HeightWidth size;
  try {
    v.indices = video::sample_frame_indices(options.sampling, v.info.frame_count, v.info.fps);
    size = video_frame_size(v.info.height, v.info.width,
                            static_cast<std::int64_t>(v.indices.size()), options);
  } catch (const InputError& e) {
    throw InputError("'" + path + "': " + e.what());
  }
  const auto transform = [size](vision::Image&& frame) {
    return vision::resize(frame, static_cast<int>(size.width), static_cast<int>(size.height),
                          vision::ResampleFilter::Bicubic);
  };
  v.frames = video::read_frames(path, v.indices, transform);
  // sample_fps = nframes / max(total_frames, 1e-6) * video_fps
  v.sample_fps = static_cast<double>(v.indices.size()) /
                 std::max(static_cast<double>(v.info.frame_count), 1e-6) * v.info.fps;
  return v;
}

}  // namespace glimpse::models::qwen2_vl
