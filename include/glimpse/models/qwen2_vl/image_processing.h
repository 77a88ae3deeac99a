#pragma once

// Qwen2-VL image processor (also used by Qwen2.5-VL): transformers 4.50
// models/qwen2_vl/image_processing_qwen2_vl.py, Qwen2VLImageProcessor (the PIL/numpy "slow"
// processor). Images and pre-sampled video frames are resized with Pillow-exact bicubic on uint8,
// rescaled by 1/255 in float64 then cast to float32, normalised in float32, padded in time to a
// multiple of temporal_patch_size and cut into patches in merge-window order.

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "glimpse/vision/image.h"
#include "glimpse/vision/resize.h"

namespace glimpse::core {
class Config;
}

namespace glimpse::models::qwen2_vl {

struct ImageProcessorConfig {
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;
  bool do_convert_rgb = true;  // images here are RGB already; kept for completeness
  vision::ResampleFilter resample = vision::ResampleFilter::Bicubic;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};  // OPENAI_CLIP_STD
  // Class defaults; checkpoints override them (Qwen2-VL ships 3136 and 12845056).
  std::int64_t min_pixels = 56 * 56;
  std::int64_t max_pixels = 28 * 28 * 1280;
  std::int64_t patch_size = 14;
  std::int64_t temporal_patch_size = 2;
  std::int64_t merge_size = 2;

  // From preprocessor_config.json. `min_pixels` / `max_pixels` win over
  // `size: {shortest_edge, longest_edge}`, as in transformers. Throws ConfigError naming the key.
  static ImageProcessorConfig from_config(const core::Config& config);
  static ImageProcessorConfig load(const std::string& path);
};

struct HeightWidth {
  std::int64_t height = 0;
  std::int64_t width = 0;
  friend bool operator==(const HeightWidth& a, const HeightWidth& b) {
    return a.height == b.height && a.width == b.width;
  }
};

// transformers 4.50 image_processing_qwen2_vl.py: smart_resize. Both sides become multiples of
// `factor` with Python's round (half to even), then scale into [min_pixels, max_pixels].
// Throws InputError when a side is below `factor` or the aspect ratio exceeds 200.
HeightWidth smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor = 28,
                         std::int64_t min_pixels = 56 * 56,
                         std::int64_t max_pixels = 28 * 28 * 1280);

// Patches of one image or one video.
struct Patches {
  at::Tensor pixel_values;           // [grid_t * grid_h * grid_w, C * T * P * P] float32
  std::array<std::int64_t, 3> grid;  // (grid_t, grid_h, grid_w), in patches
};

// Outputs of preprocess(images=...) or preprocess(videos=...), several inputs concatenated.
struct VisionBatch {
  at::Tensor pixel_values;  // [sum of patches, C * T * P * P] float32
  at::Tensor grid_thw;      // [n, 3] int64
};

class ImageProcessor {
 public:
  explicit ImageProcessor(ImageProcessorConfig config = {});
  // Reads DIR/preprocessor_config.json.
  static ImageProcessor from_pretrained(const std::string& model_dir);

  const ImageProcessorConfig& config() const { return config_; }

  // The size every frame is resized to (smart_resize with this config's limits).
  HeightWidth target_size(std::int64_t height, std::int64_t width) const;

  // _preprocess on one image (one frame) or one video (its frames, all resized to the size
  // computed from the first frame). Throws InputError for empty input.
  Patches process(const std::vector<vision::Image>& frames) const;

  VisionBatch preprocess_images(const std::vector<vision::Image>& images) const;
  VisionBatch preprocess_videos(const std::vector<std::vector<vision::Image>>& videos) const;

 private:
  ImageProcessorConfig config_;
};

// transformers processing_qwen2_5_vl.py: second_per_grid_ts = temporal_patch_size / fps per video,
// as a float32 [n_videos] tensor (torch.tensor of Python floats).
at::Tensor second_per_grid_ts(const std::vector<double>& fps, std::int64_t temporal_patch_size);

}  // namespace glimpse::models::qwen2_vl
