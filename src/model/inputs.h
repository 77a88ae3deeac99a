#pragma once

#include <string>

#include "glimpse/model/model.h"

namespace glimpse::model {

// Checks input_ids ([B, S] integers inside [0, vocab)) and attention_mask (same shape, 0/1; all
// ones when absent) and returns the inputs with both as contiguous int64. InputError names the
// tensor otherwise.
ForwardInputs checked_text_inputs(const ForwardInputs& inputs, std::int64_t vocab_size);

// `t` (pixel values, precomputed embeddings) as floating point without NaN or infinity; InputError
// naming `name` otherwise. A NaN pixel would otherwise pass silently into every logit.
void check_finite(const at::Tensor& t, const std::string& name);

// ForwardOptions::autograd is for passes without a cache: UnsupportedError with a `state`.
void check_autograd(const ForwardOptions& options, const DecodeState* state);

}  // namespace glimpse::model
