#pragma once

// Text-only decoders with 1-D RoPE: LlamaForCausalLM and Qwen2ForCausalLM (transformers
// modeling_llama.py / modeling_qwen2.py), sharing layers::Decoder with the Qwen2-VL language
// model. CausalLM is also the base of LlavaForConditionalGeneration, which overrides embed().

#include <memory>
#include <string>

#include "glimpse/model/model.h"
#include "layers/decoder.h"
#include "layers/media_cut.h"
#include "layers/rope.h"

namespace glimpse::model {
class ModelRegistry;
}

namespace glimpse::models::llama {

// A DecoderConfig from a Llama- or Qwen2-style text config, with LlamaConfig's defaults for
// absent keys (LLaVA checkpoints ship a partial text_config). `qwen2` selects q/k/v biases.
layers::DecoderConfig decoder_config(const core::Config& text, bool qwen2);

class CausalLM : public model::Model {
 public:
  // `text` is the text config (the whole config.json for text-only models).
  CausalLM(core::Config raw, const core::Config& text, bool qwen2, layers::WeightLoader& weights,
           const layers::DecoderConfig& decoder, c10::ScalarType dtype);

  const std::string& architecture() const override { return architecture_; }
  const core::Config& config() const override { return raw_config_; }
  c10::ScalarType dtype() const override { return dtype_; }
  std::int64_t num_layers() const override { return decoder_->config().num_layers; }
  std::int64_t vocab_size() const override { return decoder_->config().vocab_size; }
  std::int64_t max_positions() const override { return decoder_->config().max_position_embeddings; }
  bool accepts_images() const override { return false; }
  bool accepts_videos() const override { return false; }

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

  // Loads a text-only checkpoint folder.
  static std::unique_ptr<model::Model> load(const std::string& dir,
                                            const model::LoadOptions& options);

 protected:
  // Input embeddings for a prefill; LLaVA scatters image features into them (after the vision
  // sites of `hooks`, whose keeps go to `cut`).
  virtual at::Tensor embed(const model::ForwardInputs& inputs, const model::TokenLayout& layout,
                           model::ForwardHooks* hooks, layers::PromptCut& cut) const;
  // The layout of new tokens (all text here; LLaVA marks its image tokens). `first` is the
  // original index of the first one.
  virtual model::TokenLayout token_layout(const model::ForwardInputs& inputs,
                                          std::int64_t first) const;
  const layers::Decoder& decoder() const { return *decoder_; }

 private:
  model::ForwardOutput run(const model::ForwardInputs& inputs, const model::ForwardOptions& options,
                           model::DecodeState* state);

  core::Config raw_config_;
  std::string architecture_;
  c10::ScalarType dtype_;
  layers::RopeConfig rope_;
  std::unique_ptr<layers::Decoder> decoder_;
};

void register_models(model::ModelRegistry& registry);

}  // namespace glimpse::models::llama
