#pragma once

// Attention probes and attention edits (hook site blocks.{i}.attn, DESIGN.md section 4): rows of
// the eager attention recomputed from the queries and the cached keys, for the rows and heads a
// method asked for, so that the main attention stays on its fast path.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "glimpse/model/hooks.h"

namespace glimpse::layers {

// The probe `request` over queries `q` [B, Hq, R, D] (the requested rows, after RoPE), keys
// [B, Hkv, T, D] and the additive mask of those rows [B, 1, R, T] (undefined: none), for query
// heads `heads` (increasing, all when empty). Scores are q k^T / sqrt(D) in the compute dtype plus
// the mask; probabilities their fp32 softmax (the eager attention's rows). Rows go in blocks of
// about 4 M scores, each reduced before the next is computed, so that with reductions nothing
// larger than the result exists. Returns [B, heads or 1, R or 1, T] fp32.
at::Tensor attention_probe(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& mask,
                           const std::vector<std::int64_t>& heads,
                           const model::ProbeRequest& request);

// Applies `edits` to the attention output `out` [B, S, Hq, D] (in place) of queries `q`
// [B, Hq, S, D] over `keys`/`values` [B, Hkv, T, D] with the additive mask [B, 1, S, T]
// (undefined: none). The rows and heads of score edits are recomputed eagerly with the edits
// applied, then every ScaleOutput edit multiplies its heads and rows. `site` names the layer in
// errors.
void apply_attention_edits(at::Tensor& out, const at::Tensor& q, const at::Tensor& keys,
                           const at::Tensor& values, const at::Tensor& mask,
                           const std::vector<model::AttentionEdit>& edits, const char* site);

}  // namespace glimpse::layers
