#pragma once

// Attention over what a layer's cache holds (model::KVView): own rows, a shared prefix, or a part
// kept per head (model::HeadSegments), where each sequence and KV head reads its own entries with
// no padding to the longest head (SparseMM's varlen decode,
// sparsemm/qwen_model.py:qwen_flash_attn2_forward_SparseMM, on the CPU kernels).

#include <ATen/ATen.h>

#include "glimpse/model/kv_cache.h"

namespace glimpse::layers {

// softmax(q k^T * scale + mask) v for q [B, Hq, S, D] over the keys of `kv`: per (sequence, KV
// head) its ragged entries, then the shared segments, then the own rows. `mask` [B, 1, S, columns]
// (columns = kv.length(); additive in q's dtype) or undefined; the ragged part lies before every
// query and is never masked (a kept entry is a real key), so only the columns after it are read.
// Returns [B, S, Hq, Dv] contiguous.
at::Tensor attention_ragged(const at::Tensor& q, const model::KVView& kv, double scale,
                            const at::Tensor& mask);

// A ragged view as dense keys for probes: keys [B, H_kv, columns, D] with zeros in each head's
// holes, and the holes [B, H_kv, columns] (true where a head has no entry).
std::pair<at::Tensor, at::Tensor> padded_keys(const model::KVView& kv, std::int64_t batch);

// The attention a decoder layer runs over its cache view: attention_ragged, attention_shared or
// attention (modules.h), whichever the view needs; `probs_out` (the probabilities) is refused
// for a ragged view. `layer` names the site in errors.
at::Tensor cached_attention(const at::Tensor& q, const model::KVView& kv, double scale,
                            const at::Tensor& mask, at::Tensor* probs_out, std::int64_t layer);

}  // namespace glimpse::layers
