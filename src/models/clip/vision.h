#pragma once

// The CLIP vision transformer (transformers modeling_clip.py: CLIPVisionTransformer): patch
// convolution, class and position embeddings, pre_layrnorm, pre-LN encoder layers.

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "glimpse/core/config.h"
#include "glimpse/model/hooks.h"
#include "layers/modules.h"

namespace glimpse::models::clip {

struct VisionConfig {
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 3072;
  std::int64_t num_layers = 12;
  std::int64_t num_heads = 12;
  std::int64_t num_channels = 3;
  std::int64_t image_size = 224;
  std::int64_t patch_size = 32;
  double layer_norm_eps = 1e-5;
  layers::Activation act = layers::Activation::QuickGelu;

  // CLIPVisionConfig defaults for absent keys.
  static VisionConfig from_config(const core::Config& c);
  std::int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

struct VisionOutput {
  std::vector<at::Tensor> hidden_states;  // 0 = after pre_layrnorm, i = after layer i
  std::vector<at::Tensor> attentions;     // with attentions requested
  at::Tensor pooler_output;               // post_layernorm(CLS of the last layer), when computed
};

class VisionTransformer {
 public:
  VisionTransformer(layers::WeightLoader& weights, const VisionConfig& config,
                    const std::string& prefix);
  // pixel_values [n, C, image_size, image_size]. Runs `layers` encoder layers (all when < 0);
  // the pooler output is computed only when every layer ran.
  // With `hooks`, the sites vision.blocks.{i}.pre/post and the vision probes of the layers run.
  VisionOutput forward(const at::Tensor& pixel_values, std::int64_t layers = -1,
                       bool output_attentions = false, model::ForwardHooks* hooks = nullptr) const;
  const VisionConfig& config() const { return config_; }

 private:
  struct Layer {
    layers::LayerNorm layer_norm1, layer_norm2;
    layers::Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  };
  VisionConfig config_;
  at::Tensor class_embedding_, patch_embedding_, position_embedding_;
  layers::LayerNorm pre_layrnorm_, post_layernorm_;
  std::vector<Layer> layers_;
};

}  // namespace glimpse::models::clip
