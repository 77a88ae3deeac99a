#pragma once

// LlavaProcessor (transformers 4.50 processing_llava.py, __call__): images through
// CLIPImageProcessor, every `<image>` expanded to the number of image features the model
// scatters (patches, plus CLS with the "full" strategy), tokenized with BOS.

#include <string>

#include "glimpse/model/processor.h"
#include "glimpse/models/clip/image_processing.h"
#include "models/llava/modeling.h"

namespace glimpse::models::llava {

class LlavaProcessor : public model::Processor {
 public:
  // Reads config.json, preprocessor_config.json, processor_config.json (optional) and the
  // tokenizer of `dir`. Throws ConfigError when they disagree (image token id, token count).
  explicit LlavaProcessor(const std::string& dir);

  model::ProcessedInputs process(const model::ProcessorRequest& request) const override;
  // CLIP's resize and centre crop (after the optional pad to a square), mapped back.
  model::GridPlacement grid_placement(int width, int height) const override {
    return clip::grid_placement(width, height, image_processor_.config());
  }
  const clip::ImageProcessor& image_processor() const { return image_processor_; }
  // `<image>` tokens per image.
  std::int64_t image_seq_length() const { return config_.features_per_image(); }

 protected:
  model::TokenLayout token_layout(const model::ForwardInputs& inputs) const override;

 private:
  LlavaConfig config_;
  clip::ImageProcessor image_processor_;
  std::string image_token_ = "<image>";
};

}  // namespace glimpse::models::llava
