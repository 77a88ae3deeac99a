#pragma once

// Autoregressive generation over a Model with a KV cache: greedy or sampling (temperature, top-k,
// top-p with a seed), stopping on the eos ids of generation_config.json or after max_new_tokens,
// with a streaming callback. Follows transformers' GenerationMixin._sample for batches: a finished
// row keeps receiving pad_token_id until every row is done.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "glimpse/model/model.h"

namespace glimpse::generate {

struct GenerationConfig {
  std::int64_t max_new_tokens = 32;
  bool do_sample = false;
  double temperature = 1.0;
  std::int64_t top_k = 0;  // 0: off
  double top_p = 1.0;      // 1: off
  std::uint64_t seed = 0;
  std::vector<std::int64_t> eos_token_ids;
  std::int64_t pad_token_id = -1;        // -1: the first eos id
  bool keep_step_logits = false;         // the reference's output_logits=True (raw logits per step)
  model::ForwardHooks* hooks = nullptr;  // test-time methods (a Pipeline), not owned

  // Reads generation_config.json in `dir` when present (eos_token_id, pad_token_id, do_sample,
  // temperature, top_k, top_p); absent keys keep the defaults above. Throws ConfigError.
  static GenerationConfig from_checkpoint(const std::string& dir);
  // Throws InputError naming the field when a value is out of range.
  void validate() const;
};

struct GenerationResult {
  at::Tensor sequences;                 // [B, S + n] prompt then new tokens
  at::Tensor new_tokens;                // [B, n]
  std::vector<at::Tensor> step_logits;  // n tensors [B, V] with keep_step_logits
  std::int64_t prefill_tokens = 0;
  double prefill_ms = 0, decode_ms = 0;
};

// Called after each step with the tokens chosen for every row ([B] int64). Return false to stop.
using StreamCallback = std::function<bool(std::int64_t step, const at::Tensor& tokens)>;

GenerationResult generate(model::Model& model, const model::ForwardInputs& inputs,
                          const GenerationConfig& config, const StreamCallback& on_step = {});

}  // namespace glimpse::generate
