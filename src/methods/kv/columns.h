#pragma once

// What the decode-time KV methods (streaming_llm, h2o) read of a decoding state at kv.*: the real
// columns of a head and the tokens seen so far.

#include <ATen/ATen.h>

#include "glimpse/model/hooks.h"
#include "glimpse/model/model.h"

namespace glimpse::methods::kv {

// Head (b, h)'s real columns at a layer, increasing: not padding (`mask_row`, the sequence's key
// mask), not a hole of the ragged part (a head that holds fewer entries than the longest).
inline at::Tensor real_columns(const at::Tensor& mask_row, const model::HeadSegments* ragged,
                               std::int64_t b, std::int64_t h) {
  at::Tensor real = mask_row.ne(0);
  if (ragged != nullptr) {
    const std::int64_t n = ragged->length(b, h);
    real.narrow(0, n, ragged->longest - n).fill_(false);
  }
  return real.nonzero().view({-1});
}

// Tokens the longest sequence has passed, this pass included. The decoder extends the state's
// attention_mask only after the pass, so at a prefill layer 0's key mask holds the prompt.
inline std::int64_t tokens_seen(const model::KvSite& kv) {
  const model::DecodeState& state = *kv.state;
  if (kv.prefill) return state.key_masks.at(0).ne(0).sum(1).max().item<std::int64_t>();
  return state.attention_mask.ne(0).sum(1).max().item<std::int64_t>() +
         (kv.layout != nullptr && kv.layout->defined() ? kv.layout->length() : 1);
}

}  // namespace glimpse::methods::kv
