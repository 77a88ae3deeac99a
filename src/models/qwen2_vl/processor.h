#pragma once

// Qwen2VLProcessor and Qwen2_5_VLProcessor (transformers 4.50 processing_qwen2_vl.py and
// processing_qwen2_5_vl.py, __call__): images and videos through Qwen2VLImageProcessor, each
// `<|image_pad|>` / `<|video_pad|>` expanded to grid_t * grid_h * grid_w / merge_size^2 tokens,
// second_per_grid_ts for Qwen2.5-VL videos, and the M-RoPE layout of get_rope_index.

#include <string>

#include "glimpse/model/processor.h"
#include "glimpse/models/qwen2_vl/image_processing.h"
#include "models/qwen2_vl/config.h"

namespace glimpse::models::qwen2_vl {

class Qwen2VLProcessor : public model::Processor {
 public:
  // Reads config.json, preprocessor_config.json and the tokenizer of `dir`. Throws ConfigError
  // when they disagree (placeholder ids, patch or merge sizes).
  explicit Qwen2VLProcessor(const std::string& dir);

  model::ProcessedInputs process(const model::ProcessorRequest& request) const override;
  const ImageProcessor& image_processor() const { return image_processor_; }

 protected:
  model::TokenLayout token_layout(const model::ForwardInputs& inputs) const override;

 private:
  Qwen2VLConfig config_;
  ImageProcessor image_processor_;
};

}  // namespace glimpse::models::qwen2_vl
