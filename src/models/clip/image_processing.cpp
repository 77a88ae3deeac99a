#include "glimpse/models/clip/image_processing.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"

namespace glimpse::models::clip {

ImageProcessorConfig ImageProcessorConfig::from_config(const core::Config& c) {
  ImageProcessorConfig p;
  p.do_resize = c.get_bool("do_resize", p.do_resize);
  p.do_center_crop = c.get_bool("do_center_crop", p.do_center_crop);
  p.do_rescale = c.get_bool("do_rescale", p.do_rescale);
  p.do_normalize = c.get_bool("do_normalize", p.do_normalize);
  if (c.has("resample")) {
    const auto f = vision::resample_filter_from_pil(static_cast<int>(c.get_int("resample")));
    if (!f) c.fail("resample", "unsupported PIL filter (expected 1..5)");
    p.resample = *f;
  }
  if (c.has("size")) {
    const auto size = c.section("size");
    if (!size.has("shortest_edge"))
      size.fail("shortest_edge", "missing (only shortest-edge sizes are supported)");
    p.shortest_edge = size.get_int("shortest_edge");
  }
  if (c.has("crop_size")) {
    const auto& raw = c.raw().at("crop_size");
    if (raw.is_number_integer()) {
      p.crop_height = p.crop_width = c.get_int("crop_size");
    } else {
      const auto crop = c.section("crop_size");
      p.crop_height = crop.get_int("height");
      p.crop_width = crop.get_int("width");
    }
  }
  for (const auto& [key, v] :
       {std::pair<const char*, std::int64_t>{"size.shortest_edge", p.shortest_edge},
        {"crop_size.height", p.crop_height},
        {"crop_size.width", p.crop_width}}) {
    if (v <= 0 || v > 16384)
      c.fail(key, "expected a size in [1, 16384], found " + std::to_string(v));
  }
  p.rescale_factor = c.get_float("rescale_factor", p.rescale_factor);
  for (const char* key : {"image_mean", "image_std"}) {
    if (!c.has(key)) continue;
    const auto v = c.get_float_list(key);
    if (v.size() != 3) c.fail(key, "expected 3 values");
    auto& dst = std::string(key) == "image_mean" ? p.image_mean : p.image_std;
    for (int i = 0; i < 3; ++i) dst[i] = v[i];
  }
  for (const double s : p.image_std) {
    if (!(s > 0)) c.fail("image_std", "expected positive values");
  }
  const std::string aspect = c.get_string("image_aspect_ratio", "");
  if (aspect == "pad") p.pad_mode = PadMode::MeanColor;
  return p;
}

std::array<std::int64_t, 2> shortest_edge_size(std::int64_t height, std::int64_t width,
                                               std::int64_t shortest_edge) {
  const bool portrait = width <= height;
  const std::int64_t s = portrait ? width : height, l = portrait ? height : width;
  const auto new_long = static_cast<std::int64_t>(static_cast<double>(shortest_edge) * l / s);
  return portrait ? std::array<std::int64_t, 2>{new_long, shortest_edge}
                  : std::array<std::int64_t, 2>{shortest_edge, new_long};
}

vision::Image expand_to_square(const vision::Image& image,
                               const std::array<std::uint8_t, 3>& color) {
  if (image.width == image.height) return image;
  const int side = std::max(image.width, image.height);
  vision::Image out(side, side);
  for (int i = 0; i < side * side; ++i) std::memcpy(&out.rgb[3 * i], color.data(), 3);
  const int x0 = (side - image.width) / 2, y0 = (side - image.height) / 2;
  for (int y = 0; y < image.height; ++y) {
    std::memcpy(out.pixel(x0, y0 + y), image.row(y), image.row_bytes());
  }
  return out;
}

vision::Image center_crop(const vision::Image& image, std::int64_t crop_h, std::int64_t crop_w) {
  const std::int64_t h = image.height, w = image.width;
  // Python floor division, as in image_transforms.center_crop.
  auto floordiv2 = [](std::int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  std::int64_t top = floordiv2(h - crop_h), left = floordiv2(w - crop_w);
  vision::Image out(static_cast<int>(crop_w), static_cast<int>(crop_h));
  // Smaller images are centred on zeros: pad offsets are ceil((new - old) / 2).
  const std::int64_t pad_top = h < crop_h ? (crop_h - h + 1) / 2 : 0;
  const std::int64_t pad_left = w < crop_w ? (crop_w - w + 1) / 2 : 0;
  top += pad_top;
  left += pad_left;
  for (std::int64_t y = 0; y < crop_h; ++y) {
    const std::int64_t sy = y + std::max<std::int64_t>(top, 0) - pad_top;
    if (sy < 0 || sy >= h) continue;
    for (std::int64_t x = 0; x < crop_w; ++x) {
      const std::int64_t sx = x + std::max<std::int64_t>(left, 0) - pad_left;
      if (sx < 0 || sx >= w) continue;
      std::memcpy(out.pixel(static_cast<int>(x), static_cast<int>(y)),
                  image.pixel(static_cast<int>(sx), static_cast<int>(sy)), 3);
    }
  }
  return out;
}

ImageProcessor ImageProcessor::from_pretrained(const std::string& model_dir) {
  return ImageProcessor(ImageProcessorConfig::from_config(core::Config::load(
      (std::filesystem::path(model_dir) / "preprocessor_config.json").string())));
}

at::Tensor ImageProcessor::preprocess(const std::vector<vision::Image>& images) const {
  const auto& c = config_;
  if (images.empty()) throw InputError("image processor: no images");
  // Per channel and byte value, the float32 result of numpy's rescale (float64) and normalise.
  float lut[3][256];
  for (int ch = 0; ch < 3; ++ch) {
    for (int v = 0; v < 256; ++v) {
      float x = c.do_rescale ? static_cast<float>(v * c.rescale_factor) : static_cast<float>(v);
      if (c.do_normalize) {
        x = (x - static_cast<float>(c.image_mean[ch])) / static_cast<float>(c.image_std[ch]);
      }
      lut[ch][v] = x;
    }
  }
  std::vector<at::Tensor> out;
  for (const auto& original : images) {
    if (original.empty()) throw InputError("image processor: empty image");
    vision::Image img = original;
    if (c.pad_mode == PadMode::MeanColor) {
      std::array<std::uint8_t, 3> color{};
      for (int i = 0; i < 3; ++i)
        color[i] = static_cast<std::uint8_t>(static_cast<int>(c.image_mean[i] * 255));
      img = expand_to_square(img, color);
    }
    if (c.do_resize) {
      const auto [h, w] = shortest_edge_size(img.height, img.width, c.shortest_edge);
      if (h <= 0 || w <= 0 || h > 65535 || w > 65535) {
        throw InputError("image processor: a " + std::to_string(img.width) + "x" +
                         std::to_string(img.height) + " image cannot be resized to shortest edge " +
                         std::to_string(c.shortest_edge));
      }
      img = vision::resize(img, static_cast<int>(w), static_cast<int>(h), c.resample);
    }
    if (c.do_center_crop) img = center_crop(img, c.crop_height, c.crop_width);
    at::Tensor t = at::empty({3, img.height, img.width}, at::kFloat);
    float* dst = t.data_ptr<float>();
    const std::size_t plane = static_cast<std::size_t>(img.height) * img.width;
    for (std::size_t i = 0; i < plane; ++i) {
      for (int ch = 0; ch < 3; ++ch) dst[ch * plane + i] = lut[ch][img.rgb[3 * i + ch]];
    }
    out.push_back(t);
  }
  return at::stack(out);
}

model::GridPlacement grid_placement(int width, int height, const ImageProcessorConfig& config) {
  // The square the picture is padded to (expand2square pastes at ((s - w) // 2, (s - h) // 2)).
  double ox = 0, oy = 0, w = width, h = height;
  if (config.pad_mode == PadMode::MeanColor && width != height) {
    const int side = std::max(width, height);
    ox = -static_cast<double>((side - width) / 2);
    oy = -static_cast<double>((side - height) / 2);
    w = h = side;
  }
  std::int64_t rh = static_cast<std::int64_t>(h), rw = static_cast<std::int64_t>(w);
  if (config.do_resize) {
    const auto size = shortest_edge_size(rh, rw, config.shortest_edge);
    rh = size[0];
    rw = size[1];
  }
  // center_crop: top = (height - crop_height) // 2 in the resized picture (negative: padding).
  double top = 0, left = 0, ch = static_cast<double>(rh), cw = static_cast<double>(rw);
  if (config.do_center_crop) {
    const auto floor_div = [](std::int64_t a, std::int64_t b) {
      return static_cast<double>(a >= 0 ? a / b : -((-a + b - 1) / b));
    };
    top = floor_div(rh - config.crop_height, 2);
    left = floor_div(rw - config.crop_width, 2);
    ch = static_cast<double>(config.crop_height);
    cw = static_cast<double>(config.crop_width);
  }
  const double sx = w / static_cast<double>(rw), sy = h / static_cast<double>(rh);
  return {ox + left * sx, oy + top * sy, ox + (left + cw) * sx, oy + (top + ch) * sy};
}

}  // namespace glimpse::models::clip
