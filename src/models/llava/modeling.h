#pragma once

// LlavaForConditionalGeneration (transformers 4.50 modeling_llava.py): CLIP vision tower, feature
// layer selection, the Linear-GELU-Linear projector, and the Llama decoder with image features
// scattered into the `<image>` positions.

#include <memory>
#include <string>
#include <vector>

#include "models/clip/vision.h"
#include "models/llama/modeling.h"

namespace glimpse::models::llava {

struct LlavaConfig {
  std::int64_t image_token_index = 32000;
  std::vector<std::int64_t> vision_feature_layers{-2};     // an index or a list, as in the config
  std::string vision_feature_select_strategy = "default";  // default (drop CLS) | full
  layers::Activation projector_act = layers::Activation::Gelu;
  bool projector_bias = true;
  clip::VisionConfig vision;

  static LlavaConfig from_config(const core::Config& c);
  // Features per image: patches, plus CLS with the "full" strategy.
  std::int64_t features_per_image() const;
};

struct ImageFeatures {
  at::Tensor features;  // [n_images, features_per_image, text hidden]
  clip::VisionOutput vision;
};

// Marks the `<image>` tokens of input_ids [B, S] (int64) in a text layout of the same shape:
// modality, image number and patch-grid cell. Shared by the model's prefill and the processor.
void mark_image_tokens(const LlavaConfig& config, const at::Tensor& input_ids,
                       model::TokenLayout& layout);

class LlavaForConditionalGeneration : public llama::CausalLM {
 public:
  static std::unique_ptr<model::Model> load(const std::string& dir,
                                            const model::LoadOptions& options);
  LlavaForConditionalGeneration(core::Config raw, const core::Config& text,
                                layers::WeightLoader& weights, const layers::DecoderConfig& decoder,
                                const LlavaConfig& llava, c10::ScalarType dtype);

  // get_image_features: vision tower, selected layers, strategy, projector.
  ImageFeatures image_features(const at::Tensor& pixel_values,
                               bool output_attentions = false) const;
  // The tower (with its hook sites) and the selected layers and strategy: the projector's input
  // [images, features per image, C].
  at::Tensor selected_features(const at::Tensor& pixel_values, bool output_attentions,
                               model::ForwardHooks* hooks, clip::VisionOutput* vision) const;
  at::Tensor project(const at::Tensor& features) const {
    return linear_2_(layers::activate(linear_1_(features), llava_.projector_act));
  }
  const LlavaConfig& llava_config() const { return llava_; }
  model::MediaEmbeds embed_media(const model::ForwardInputs& inputs) override;
  std::optional<model::SyntheticImage> synthetic_image(
      const model::SyntheticImageRequest& request) const override;
  bool accepts_images() const override { return true; }

 protected:
  at::Tensor embed(const model::ForwardInputs& inputs, const model::TokenLayout& layout,
                   model::ForwardHooks* hooks, layers::PromptCut& cut) const override;
  model::TokenLayout token_layout(const model::ForwardInputs& inputs,
                                  std::int64_t first) const override;

 private:
  LlavaConfig llava_;
  std::unique_ptr<clip::VisionTransformer> vision_;
  layers::Linear linear_1_, linear_2_;
};

void register_models(model::ModelRegistry& registry);

}  // namespace glimpse::models::llava
