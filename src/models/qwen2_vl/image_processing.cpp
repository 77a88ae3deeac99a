#include "glimpse/models/qwen2_vl/image_processing.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF  // keep numpy's separate roundings
#endif

namespace glimpse::models::qwen2_vl {
namespace {

// Python's round(): half to even (nearbyint in the default rounding mode).
double py_round(double x) {
  return std::nearbyint(x);
}

std::string dims(std::int64_t h, std::int64_t w) {
  return std::to_string(h) + "x" + std::to_string(w) + " (height x width)";
}

std::array<double, 3> read_channels(const core::Config& c, const std::string& key,
                                    const std::array<double, 3>& fallback) {
  if (!c.has(key)) return fallback;
  const auto& v = c.raw().at(key);
  if (v.is_number()) {
    const double x = c.get_float(key);
    return {x, x, x};
  }
  const auto list = c.get_float_list(key);
  if (list.size() != 3) {
    c.fail(key, "expected 3 values (one per RGB channel), found " + std::to_string(list.size()));
  }
  return {list[0], list[1], list[2]};
}

std::int64_t positive(const core::Config& c, const std::string& key, std::int64_t fallback) {
  const std::int64_t v = c.get_int(key, fallback);
  if (v <= 0) c.fail(key, "expected a positive integer, found " + std::to_string(v));
  return v;
}

}  // namespace

ImageProcessorConfig ImageProcessorConfig::from_config(const core::Config& c) {
  ImageProcessorConfig p;
  p.do_resize = c.get_bool("do_resize", p.do_resize);
  p.do_rescale = c.get_bool("do_rescale", p.do_rescale);
  p.do_normalize = c.get_bool("do_normalize", p.do_normalize);
  p.do_convert_rgb = c.get_bool("do_convert_rgb", p.do_convert_rgb);
  if (c.has("resample")) {
    const auto filter = vision::resample_filter_from_pil(static_cast<int>(c.get_int("resample")));
    if (!filter) {
      c.fail("resample",
             "expected a PIL convolution filter (1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 "
             "BOX, 5 HAMMING), found " +
                 std::to_string(c.get_int("resample")));
    }
    p.resample = *filter;
  }
  p.rescale_factor = c.get_float("rescale_factor", p.rescale_factor);
  p.image_mean = read_channels(c, "image_mean", p.image_mean);
  p.image_std = read_channels(c, "image_std", p.image_std);
  for (double s : p.image_std) {
    if (s == 0.0) c.fail("image_std", "a standard deviation is zero");
  }
  // transformers: min_pixels / max_pixels override size.shortest_edge / size.longest_edge.
  p.min_pixels = positive(c, "size.shortest_edge", p.min_pixels);
  p.max_pixels = positive(c, "size.longest_edge", p.max_pixels);
  p.min_pixels = positive(c, "min_pixels", p.min_pixels);
  p.max_pixels = positive(c, "max_pixels", p.max_pixels);
  p.patch_size = positive(c, "patch_size", p.patch_size);
  p.temporal_patch_size = positive(c, "temporal_patch_size", p.temporal_patch_size);
  p.merge_size = positive(c, "merge_size", p.merge_size);
  if (p.patch_size > 1024 || p.merge_size > 64 || p.temporal_patch_size > 64) {
    c.fail("patch_size", "patch_size, merge_size or temporal_patch_size is implausibly large");
  }
  return p;
}

ImageProcessorConfig ImageProcessorConfig::load(const std::string& path) {
  return from_config(core::Config::load(path));
}

HeightWidth smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                         std::int64_t min_pixels, std::int64_t max_pixels) {
  if (factor <= 0) throw InputError("smart_resize: factor must be positive");
  if (height < factor || width < factor) {
    throw InputError("image of " + dims(height, width) +
                     " is too small: both sides must be at least " + std::to_string(factor));
  }
  const double ratio =
      static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width));
  if (ratio > 200) {
    throw InputError("image of " + dims(height, width) + " has an aspect ratio above 200 (found " +
                     std::to_string(ratio) + ")");
  }
  const double f = static_cast<double>(factor);
  const double h = static_cast<double>(height);
  const double w = static_cast<double>(width);
  auto h_bar = static_cast<std::int64_t>(py_round(h / f)) * factor;
  auto w_bar = static_cast<std::int64_t>(py_round(w / f)) * factor;
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt((h * w) / static_cast<double>(max_pixels));
    h_bar = static_cast<std::int64_t>(std::floor(h / beta / f)) * factor;
    w_bar = static_cast<std::int64_t>(std::floor(w / beta / f)) * factor;
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (h * w));
    h_bar = static_cast<std::int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<std::int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return {h_bar, w_bar};
}

ImageProcessor::ImageProcessor(ImageProcessorConfig config) : config_(std::move(config)) {}

ImageProcessor ImageProcessor::from_pretrained(const std::string& model_dir) {
  const auto path = (std::filesystem::path(model_dir) / "preprocessor_config.json").string();
  return ImageProcessor(ImageProcessorConfig::load(path));
}

HeightWidth ImageProcessor::target_size(std::int64_t height, std::int64_t width) const {
  return smart_resize(height, width, config_.patch_size * config_.merge_size, config_.min_pixels,
                      config_.max_pixels);
}

Patches ImageProcessor::process(const std::vector<vision::Image>& frames) const {
  const auto& c = config_;
  if (frames.empty()) throw InputError("image processor: no image or frame given");
  for (const auto& f : frames) {
    if (f.empty() || f.rgb.size() != f.row_bytes() * f.height) {
      throw InputError("image processor: an image is empty or its buffer has the wrong size");
    }
  }
  // Every frame gets the size computed from the first one (HF: get_image_size(images[0])).
  HeightWidth size{frames[0].height, frames[0].width};
  if (c.do_resize) size = target_size(size.height, size.width);
  const std::int64_t unit = c.patch_size * c.merge_size;
  if (size.height % unit != 0 || size.width % unit != 0) {
    throw InputError("image processor: image of " + dims(size.height, size.width) +
                     " is not a multiple of patch_size * merge_size = " + std::to_string(unit) +
                     " (do_resize is off)");
  }
  if (size.height * size.width > (std::int64_t{1} << 31)) {
    throw InputError("image processor: target size " + dims(size.height, size.width) +
                     " is too large");
  }
  // Frames already at the target size are used in place (PIL would return a copy).
  std::vector<vision::Image> storage;
  storage.reserve(frames.size());
  std::vector<const vision::Image*> resized;
  for (const auto& f : frames) {
    if (f.height == size.height && f.width == size.width) {
      resized.push_back(&f);
    } else if (c.do_resize) {
      storage.push_back(vision::resize(f, static_cast<int>(size.width),
                                       static_cast<int>(size.height), c.resample));
      resized.push_back(&storage.back());
    } else {
      throw InputError("image processor: frames differ in size and do_resize is off");
    }
  }

  // Per channel and byte value, the normalised float32 as numpy computes it: rescale in float64
  // then cast (image_transforms.rescale), then (x - mean) / std in float32 (normalize).
  float lut[3][256];
  for (int ch = 0; ch < 3; ++ch) {
    const float mean = static_cast<float>(c.image_mean[ch]);
    const float stdv = static_cast<float>(c.image_std[ch]);
    for (int v = 0; v < 256; ++v) {
      float x = c.do_rescale ? static_cast<float>(static_cast<double>(v) * c.rescale_factor)
                             : static_cast<float>(v);
      if (c.do_normalize) {
        const float centred = x - mean;
        x = centred / stdv;
      }
      lut[ch][v] = x;
    }
  }

  const std::int64_t tp = c.temporal_patch_size, ps = c.patch_size, m = c.merge_size;
  const auto n_frames = static_cast<std::int64_t>(resized.size());
  const std::int64_t grid_t = (n_frames + tp - 1) / tp;  // last frame repeated to fill
  const std::int64_t grid_h = size.height / ps, grid_w = size.width / ps;
  const std::int64_t rows = grid_t * grid_h * grid_w;
  const std::int64_t cols = 3 * tp * ps * ps;
  at::Tensor out = at::empty({rows, cols}, at::kFloat);
  float* dst = out.data_ptr<float>();
  // Row order (t, block_h, block_w, in-block h, in-block w); column order (channel, t, y, x):
  // HF's reshape to [gt, tp, C, gh/m, m, ps, gw/m, m, ps] and permute (0, 3, 6, 4, 7, 2, 1, 5, 8).
  for (std::int64_t t = 0; t < grid_t; ++t) {
    for (std::int64_t bh = 0; bh < grid_h / m; ++bh) {
      for (std::int64_t bw = 0; bw < grid_w / m; ++bw) {
        for (std::int64_t ih = 0; ih < m; ++ih) {
          for (std::int64_t iw = 0; iw < m; ++iw) {
            const std::int64_t y0 = (bh * m + ih) * ps, x0 = (bw * m + iw) * ps;
            for (int ch = 0; ch < 3; ++ch) {
              for (std::int64_t k = 0; k < tp; ++k) {
                const auto& frame = *resized[std::min(t * tp + k, n_frames - 1)];
                for (std::int64_t y = 0; y < ps; ++y) {
                  const std::uint8_t* src =
                      frame.pixel(static_cast<int>(x0), static_cast<int>(y0 + y)) + ch;
                  for (std::int64_t x = 0; x < ps; ++x) *dst++ = lut[ch][src[x * 3]];
                }
              }
            }
          }
        }
      }
    }
  }
  return {out, {grid_t, grid_h, grid_w}};
}

namespace {

VisionBatch concat(std::vector<Patches> parts) {
  std::vector<at::Tensor> values;
  at::Tensor grid = at::empty({static_cast<std::int64_t>(parts.size()), 3}, at::kLong);
  auto g = grid.accessor<std::int64_t, 2>();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    values.push_back(parts[i].pixel_values);
    for (int j = 0; j < 3; ++j) g[static_cast<std::int64_t>(i)][j] = parts[i].grid[j];
  }
  return {values.size() == 1 ? values[0] : at::cat(values, 0), grid};
}

}  // namespace

VisionBatch ImageProcessor::preprocess_images(const std::vector<vision::Image>& images) const {
  if (images.empty()) throw InputError("image processor: no images given");
  std::vector<Patches> parts;
  for (const auto& image : images) parts.push_back(process({image}));
  return concat(std::move(parts));
}

VisionBatch ImageProcessor::preprocess_videos(
    const std::vector<std::vector<vision::Image>>& videos) const {
  if (videos.empty()) throw InputError("image processor: no videos given");
  std::vector<Patches> parts;
  for (const auto& frames : videos) parts.push_back(process(frames));
  return concat(std::move(parts));
}

at::Tensor second_per_grid_ts(const std::vector<double>& fps, std::int64_t temporal_patch_size) {
  at::Tensor out = at::empty({static_cast<std::int64_t>(fps.size())}, at::kFloat);
  for (std::size_t i = 0; i < fps.size(); ++i) {
    if (!(fps[i] > 0.0) || !std::isfinite(fps[i])) {
      throw InputError("fps must be a positive number, found " + std::to_string(fps[i]));
    }
    out[static_cast<std::int64_t>(i)] =
        static_cast<float>(static_cast<double>(temporal_patch_size) / fps[i]);
  }
  return out;
}

}  // namespace glimpse::models::qwen2_vl
