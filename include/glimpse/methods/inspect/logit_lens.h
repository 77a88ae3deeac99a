#pragma once

// Logit lens and hidden-state capture over a forward run with output_hidden_states. The lens of
// hidden state i (the output of decoder layer i-1, i = 1..L) is lm_head(final_norm(h_i)) at one
// position. The reference's hidden_states[L] is already normed, so the last layer uses
// last_layer_output_prenorm through the norm (equivalently hidden_states[L] without it) and its
// row equals the model's logits (../shared/specs/attention.md section 0 and "Hidden-state
// readout").

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/model/model.h"

namespace glimpse::text {
class Tokenizer;
}

namespace glimpse::methods::inspect {

struct LensToken {
  std::int64_t id = 0;
  double prob = 0;  // softmax over the vocabulary, fp32
  double logit = 0;
};

struct LensLayer {
  std::int64_t hidden_state = 0;  // i: the output of decoder layer i-1
  std::vector<LensToken> top;
};

// [L, V] fp32: the lens logits of hidden states 1..L at row `position` of batch row 0.
// Throws InputError when `out` has no hidden states or the position is outside them.
at::Tensor logit_lens_logits(const model::Model& model, const model::ForwardOutput& out,
                             std::int64_t position);

// The top-k tokens per layer (k clipped to the vocabulary).
std::vector<LensLayer> logit_lens(const model::Model& model, const model::ForwardOutput& out,
                                  std::int64_t position, std::int64_t top_k);

// {"position": p, "layers": [{"hidden_state": i, "layer": i-1, "top": [{"id", "token", "piece",
// "prob", "logit"}]}]}; token (decode of the single id) and piece (the vocabulary entry) come
// from `tokenizer` when given.
std::string logit_lens_json(const std::vector<LensLayer>& layers, std::int64_t position,
                            const text::Tokenizer* tokenizer);

// hidden_states.{l+1} (the output of decoder layer l, in the reference's numbering, so the last
// one is normed) for each chosen layer, plus last_layer_output_prenorm when the last layer is
// chosen; fp32, ready for core::save_tensors.
std::vector<std::pair<std::string, at::Tensor>> hidden_state_tensors(
    const model::ForwardOutput& out, const std::vector<std::int64_t>& layers);

}  // namespace glimpse::methods::inspect
