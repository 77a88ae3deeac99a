#pragma once

// Qwen2-VL and Qwen2.5-VL configuration (transformers configuration_qwen2_vl.py and
// configuration_qwen2_5_vl.py). Accepts the flat layout of the published checkpoints and the
// nested `text_config` of newer transformers; a partial `vision_config` takes the class defaults.

#include <string>
#include <vector>

#include "glimpse/core/config.h"
#include "layers/decoder.h"

namespace glimpse::models::qwen2_vl {

struct VisionConfig {
  bool is_2_5 = false;  // Qwen2.5-VL: RMSNorm, SwiGLU, window attention
  std::int64_t depth = 32;
  std::int64_t embed_dim = 1280;  // ViT width (Qwen2-VL `embed_dim`, Qwen2.5-VL `hidden_size`)
  std::int64_t out_dim = 3584;    // merger output = LLM width
  std::int64_t num_heads = 16;
  std::int64_t mlp_dim = 5120;  // Qwen2-VL: embed_dim * mlp_ratio; Qwen2.5-VL: intermediate_size
  layers::Activation act = layers::Activation::QuickGelu;
  std::int64_t in_channels = 3;
  std::int64_t patch_size = 14;
  std::int64_t spatial_merge_size = 2;
  std::int64_t temporal_patch_size = 2;
  // Qwen2.5-VL only.
  std::int64_t window_size = 112;
  std::vector<std::int64_t> fullatt_block_indexes{7, 15, 23, 31};
  double tokens_per_second = 4;

  std::int64_t head_dim() const { return embed_dim / num_heads; }
  std::int64_t patch_dim() const {
    return in_channels * temporal_patch_size * patch_size * patch_size;
  }
};

struct Qwen2VLConfig {
  std::string architecture;
  std::string model_type;  // qwen2_vl | qwen2_5_vl
  layers::DecoderConfig text;
  VisionConfig vision;
  double rope_theta = 1e6;
  std::vector<std::int64_t> mrope_section;  // sums to head_dim / 2
  std::int64_t image_token_id = 151655;
  std::int64_t video_token_id = 151656;
  std::int64_t vision_start_token_id = 151652;
};

// Reads and validates; errors are ConfigError naming config.json and the key.
Qwen2VLConfig parse_config(const core::Config& config);

}  // namespace glimpse::models::qwen2_vl
