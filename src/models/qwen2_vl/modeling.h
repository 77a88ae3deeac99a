#pragma once

// Qwen2VLForConditionalGeneration and Qwen2_5_VLForConditionalGeneration (transformers 4.50
// modeling_qwen2_vl.py / modeling_qwen2_5_vl.py): vision tower, feature injection at the
// placeholder tokens, M-RoPE positions and the Qwen2 decoder.

#include <memory>
#include <string>

#include "glimpse/model/model.h"
#include "layers/decoder.h"
#include "layers/media_cut.h"
#include "models/qwen2_vl/config.h"
#include "models/qwen2_vl/vision.h"

namespace glimpse::model {
class ModelRegistry;
}

namespace glimpse::models::qwen2_vl {

class Qwen2VLForConditionalGeneration : public model::Model {
 public:
  Qwen2VLForConditionalGeneration(const std::string& dir, const model::LoadOptions& options);

  const std::string& architecture() const override { return config_.architecture; }
  const core::Config& config() const override { return raw_config_; }
  c10::ScalarType dtype() const override { return dtype_; }
  std::int64_t num_layers() const override { return config_.text.num_layers; }
  std::int64_t vocab_size() const override { return config_.text.vocab_size; }
  std::int64_t max_positions() const override { return config_.text.max_position_embeddings; }
  bool accepts_images() const override { return true; }
  bool accepts_videos() const override { return true; }

  model::ForwardOutput forward(const model::ForwardInputs& inputs,
                               const model::ForwardOptions& options) override;
  model::ForwardOutput forward_cached(const model::ForwardInputs& inputs,
                                      const model::ForwardOptions& options,
                                      model::DecodeState& state) override;
  model::DecodeState new_state(std::int64_t batch) const override;
  const model::DecoderShape& decoder_shape() const override { return decoder_->shape(); }
  at::Tensor logits_from_hidden(const at::Tensor& hidden, bool apply_norm) const override {
    return decoder_->lm_head(apply_norm ? decoder_->final_norm(hidden) : hidden);
  }
  model::MediaEmbeds embed_media(const model::ForwardInputs& inputs) override;
  std::optional<model::SyntheticImage> synthetic_image(
      const model::SyntheticImageRequest& request) const override;

  // The vision tower alone (pixel_values, grid) -> merged features; for tests and tools.
  at::Tensor encode_vision(const at::Tensor& pixel_values, const at::Tensor& grid_thw,
                           VisionTrace* trace = nullptr) const;
  const Qwen2VLConfig& qwen_config() const { return config_; }

 private:
  model::ForwardOutput run(const model::ForwardInputs& inputs, const model::ForwardOptions& options,
                           model::DecodeState* state);
  // Embeddings with image and video features (given, or from the vision tower) scattered into
  // their placeholder positions, after the vision sites; `cut` gets the placeholder tokens that
  // vision.features or vision.out dropped.
  at::Tensor embed(const model::ForwardInputs& inputs, const model::TokenLayout& layout,
                   model::ForwardHooks* hooks, layers::PromptCut& cut) const;

  core::Config raw_config_;
  Qwen2VLConfig config_;
  c10::ScalarType dtype_;
  std::unique_ptr<VisionTransformer> vision_;
  std::unique_ptr<layers::Decoder> decoder_;
};

void register_models(model::ModelRegistry& registry);

}  // namespace glimpse::models::qwen2_vl
