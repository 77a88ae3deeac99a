#pragma once

// Small building blocks shared by the model families, each following the reference numerics
// (transformers modeling files; see ../shared/specs/models.md section 1).

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace glimpse::layers {

class WeightLoader;

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined

  static Linear load(WeightLoader& w, const std::string& prefix, std::int64_t in, std::int64_t out,
                     bool bias);
  // at::linear; a single row (decode) goes through the fused GEMV kernel where it applies.
  at::Tensor operator()(const at::Tensor& x) const;
};

// LlamaRMSNorm / Qwen2RMSNorm: normalise in fp32, cast back to the input dtype, then scale.
struct RMSNorm {
  at::Tensor weight;
  double eps = 1e-6;

  static RMSNorm load(WeightLoader& w, const std::string& prefix, std::int64_t dim, double eps);
  at::Tensor operator()(const at::Tensor& x) const;
};

struct LayerNorm {
  at::Tensor weight, bias;
  double eps = 1e-6;

  static LayerNorm load(WeightLoader& w, const std::string& prefix, std::int64_t dim, double eps);
  at::Tensor operator()(const at::Tensor& x) const {
    return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
  }
};

// Activations by their config names: silu, gelu (exact erf), gelu_pytorch_tanh, quick_gelu, relu.
// Throws UnsupportedError naming `where` for others.
enum class Activation { Silu, Gelu, GeluTanh, QuickGelu, Relu };
Activation parse_activation(const std::string& name, const std::string& where);
at::Tensor activate(const at::Tensor& x, Activation act);

// down(act(gate(x)) * up(x)) (transformers Qwen2MLP / LlamaMLP.forward) with silu fused into the
// product in place and, for a single row, gate and up in one pass over both weights.
at::Tensor gated_mlp(const Linear& gate, const Linear& up, const Linear& down, const at::Tensor& x,
                     Activation act);

// softmax(q k^T * scale + mask) v (transformers eager_attention_forward) with queries taken in
// chunks so that the scores never exist whole, the scale and mask applied inside an fp32 softmax
// pass in place, and grouped-query heads sharing their key head without repeat_kv.
//   q [B, Hq, S, D], k and v [B, Hkv, T, D] (Hkv divides Hq; query head h uses key head
//   h / (Hq / Hkv)), mask [B, 1, S, T] additive in q's dtype or undefined.
//   causal: the mask blocks every key after position T - S + i for query i (and a row with any
//   key allowed has key 0 allowed); keys past the last allowed one of a chunk are then skipped.
//   probs_out: the probabilities [B, Hq, S, T] (computed in one chunk).
//   chunk: query rows per chunk (0: about 4 M scores per chunk).
// Returns [B, S, Hq, D] contiguous.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                     const at::Tensor& mask, bool causal, at::Tensor* probs_out = nullptr,
                     std::int64_t chunk = 0);

// attention() over keys in segments: `shared` prefix segments (k, v) [1, Hkv, n_i, D] read by
// every sequence in place (the prefix that forks share), then the own keys and values
// [B, Hkv, T, D] (undefined: none). Key j of `mask` [B, 1, S, sum n_i + T] is key j of the
// concatenation. The scores of all segments go through one fp32 softmax; each segment's
// probabilities times its values are summed in fp32. Queries are taken in chunks as attention()
// does. Returns [B, S, Hq, D] contiguous.
at::Tensor attention_shared(const at::Tensor& q,
                            const std::vector<std::pair<at::Tensor, at::Tensor>>& shared,
                            const at::Tensor& k, const at::Tensor& v, double scale,
                            const at::Tensor& mask, at::Tensor* probs_out = nullptr);

// cat(-x2, x1) over the last dimension (NeoX-style half split).
at::Tensor rotate_half(const at::Tensor& x);

// The most negative finite value of a floating dtype: the additive mask value of the reference.
double mask_min(c10::ScalarType dtype);

}  // namespace glimpse::layers
