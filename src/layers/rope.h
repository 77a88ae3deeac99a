#pragma once

// 1-D rotary position embeddings of the Llama family with the rope_scaling types that configs
// declare (transformers modeling_rope_utils.py: default, linear, dynamic, llama3).

#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "glimpse/core/config.h"

namespace glimpse::layers {

struct RopeConfig {
  std::string type = "default";  // default | linear | dynamic | llama3
  double theta = 10000.0;
  std::int64_t dim = 0;  // rotary dims (head_dim)
  double factor = 1.0;
  std::int64_t max_position_embeddings = 2048;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;

  // From a text config (`rope_theta`, `rope_scaling`, `max_position_embeddings`); unknown types
  // are UnsupportedError, missing parameters ConfigError.
  static RopeConfig from_config(const core::Config& config, std::int64_t head_dim);
};

// inv_freq [dim/2] in fp32 for sequences up to `seq_len` (which only matters for `dynamic`).
at::Tensor rope_inv_freq(const RopeConfig& rope, std::int64_t seq_len);

// cos, sin [B, S, dim] in `dtype` for position_ids [B, S]: fp32 angles, cast at the end
// (transformers LlamaRotaryEmbedding.forward).
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const RopeConfig& rope,
                                               const at::Tensor& position_ids,
                                               c10::ScalarType dtype);

}  // namespace glimpse::layers
