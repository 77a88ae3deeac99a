#pragma once

// CLIPImageProcessor as LLaVA-1.5 uses it (transformers 4.50 models/clip/image_processing_clip.py,
// the PIL/numpy processor): resize the shortest edge with Pillow-exact bicubic, center crop,
// rescale by 1/255 (float64, then float32) and normalise in float32. Optionally the original
// LLaVA repository's pad-to-square with the mean colour first (`image_aspect_ratio: pad`).

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "glimpse/model/processor.h"
#include "glimpse/vision/image.h"
#include "glimpse/vision/resize.h"

namespace glimpse::core {
class Config;
}

namespace glimpse::models::clip {

// How non-square images are handled before the CLIP processor.
enum class PadMode {
  None,       // transformers' LlavaProcessor default: resize the short side, crop the centre
  MeanColor,  // LLaVA repository `expand2square`: pad to a square of the mean colour first
};

struct ImageProcessorConfig {
  bool do_resize = true;
  bool do_center_crop = true;
  bool do_rescale = true;
  bool do_normalize = true;
  vision::ResampleFilter resample = vision::ResampleFilter::Bicubic;
  std::int64_t shortest_edge = 224;
  std::int64_t crop_height = 224, crop_width = 224;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};
  PadMode pad_mode = PadMode::None;

  // From preprocessor_config.json (size.shortest_edge, crop_size, ...); `image_aspect_ratio:
  // "pad"` selects PadMode::MeanColor. Throws ConfigError naming the key.
  static ImageProcessorConfig from_config(const core::Config& config);
};

// The (height, width) the shortest-edge resize produces: the long side is
// int(shortest_edge * long / short), truncated (image_transforms.get_resize_output_image_size).
std::array<std::int64_t, 2> shortest_edge_size(std::int64_t height, std::int64_t width,
                                               std::int64_t shortest_edge);

// expand2square: the image centred on a square of side max(w, h) filled with `color`.
vision::Image expand_to_square(const vision::Image& image,
                               const std::array<std::uint8_t, 3>& color);

// image_transforms.center_crop, padding with zeros when the image is smaller than the crop.
vision::Image center_crop(const vision::Image& image, std::int64_t height, std::int64_t width);

// Where the crop the processor makes lies on the original picture of `width` x `height`: the
// shortest-edge resize and centre crop, after the optional pad to a square, mapped back
// (image_processing_clip.py resize + center_crop; LLaVA repository expand2square).
model::GridPlacement grid_placement(int width, int height, const ImageProcessorConfig& config);

class ImageProcessor {
 public:
  explicit ImageProcessor(ImageProcessorConfig config = {}) : config_(config) {}
  static ImageProcessor from_pretrained(const std::string& model_dir);
  const ImageProcessorConfig& config() const { return config_; }

  // pixel_values [n, 3, crop_height, crop_width] float32. Throws InputError for an empty image.
  at::Tensor preprocess(const std::vector<vision::Image>& images) const;

 private:
  ImageProcessorConfig config_;
};

}  // namespace glimpse::models::clip
