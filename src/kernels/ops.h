#pragma once

// Fused CPU ops on tensors for the hot paths of the models. Each runs an AVX-512 kernel
// (cpu_kernels.h) when the CPU has it and the tensors qualify (fp32 or bf16, dense rows), and
// otherwise the plain ATen expression it replaces, so results agree on every machine up to
// rounding of the fp32 intermediates.

#include <ATen/ATen.h>

#include <vector>

namespace glimpse::kernels {

// Whether the fused kernels are used (AVX-512 present and not switched off). Tests switch them
// off to compare with the ATen expressions; GLIMPSE_NO_KERNELS=1 switches them off at start.
bool enabled();
void set_enabled(bool on);

// Reference mode of the calling thread (ForwardOptions::autograd): while a ReferenceOps is alive
// on a thread, enabled() is false there and the ops below that work in place return fresh
// tensors instead, so that autograd can differentiate through them. Other threads are unaffected.
bool reference_ops();
class ReferenceOps {
 public:
  explicit ReferenceOps(bool on);
  ~ReferenceOps();
  ReferenceOps(const ReferenceOps&) = delete;
  ReferenceOps& operator=(const ReferenceOps&) = delete;

 private:
  bool previous_;
};

// transformers Qwen2RMSNorm: weight * (x * rsqrt(mean(x^2) + eps) in fp32).to(x.dtype).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// In place: x * cos + rotate_half(x) * sin for x [B, S, heads, D] (any view whose last two dims
// are dense and whose B, S dims are rows `x.stride(1)` apart with B = 1, or a dense tensor) and
// cos, sin [B, S, D] broadcast over heads. With tables in x's dtype every op rounds to that dtype
// (the decoder's apply_rotary_pos_emb); with fp32 tables and bf16 x the rotation is computed in
// fp32 and rounded once (the vision tower's apply_rotary_pos_emb_vision).
void rope_(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// rope_ on x, returned; in reference mode a rotated copy (x untouched).
at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// In place over the rows of scores [R, T] (last dim dense): softmax(scores * scale + mask) with
// the softmax in fp32 and the result in the scores dtype (transformers eager_attention_forward).
// mask (optional) is [Bm, P, T] (last dim dense): score row r adds mask[r / group, r % P].
void softmax_(const at::Tensor& scores, double scale, const at::Tensor& mask, std::int64_t group);

// Keys [G, T, D] (any strides) laid out for attention_probs: bf16 as pairs of dims [G, D/2, T]
// (int32), fp32 transposed [G, D, T]. Undefined when the fused kernel does not apply (no AVX-512,
// bf16 without AVX512-BF16, odd D in bf16, other dtypes): use the bmm + softmax_ path then.
at::Tensor pack_keys(const at::Tensor& k);
// softmax(q k^T * scale + mask) over the first `cols` keys for q [G, R, D] (q's dtype), keys from
// pack_keys, mask as softmax_ (group over the G*R rows): [G, R, cols] in q's dtype. The scores
// exist only as fp32 tiles of avx512::kQkRows rows in each thread.
at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& packed, std::int64_t cols,
                           double scale, const at::Tensor& mask, std::int64_t group);
// The same over keys in segments laid end to end (each from pack_keys, [G_s, .., T_s]): query
// group gi reads group gi % G_s of segment s, so a prefix shared by B sequences is packed once
// with one group per key head. `cols` counts the keys of all segments (the last may be cut).
at::Tensor attention_probs(const at::Tensor& q, const std::vector<at::Tensor>& segments,
                           std::int64_t cols, double scale, const at::Tensor& mask,
                           std::int64_t group);

// In place: gate <- silu(gate) * up (rounded as ATen: after silu and after the product).
void silu_mul_(const at::Tensor& gate, const at::Tensor& up);

// Whether gemv() takes this input: 1 to kGemvMaxInputs rows (numel / size(-1)), e.g. one token of
// up to 8 sequences in decode; fp32 or bf16 (bf16 needs AVX512-BF16).
constexpr std::int64_t kGemvMaxInputs = 8;
bool gemv_applies(const at::Tensor& x, const at::Tensor& weight);

struct LinearRef {
  const at::Tensor* weight;  // [N, K]
  const at::Tensor* bias;    // [N] or undefined
};
// x [.., K] with up to kGemvMaxInputs rows times each weight in one parallel region:
// at::linear(x, w, b) for each (same shapes), each weight row read once for all rows of x. The
// result of a row of x does not depend on the other rows (bitwise). Requires gemv_applies.
std::vector<at::Tensor> gemv(const at::Tensor& x, const std::vector<LinearRef>& linears);
// silu(x W_g^T + b_g) * (x W_u^T + b_u) for the rows of x (as gemv) in one parallel region,
// rounded as ATen's separate ops would. Requires gemv_applies.
at::Tensor gemv_silu_mul(const at::Tensor& x, const LinearRef& gate, const LinearRef& up);

}  // namespace glimpse::kernels
