#include "layers/modules.h"

#include <algorithm>
#include <limits>

#include "glimpse/core/error.h"
#include "kernels/ops.h"
#include "layers/weights.h"

namespace glimpse::layers {

Linear Linear::load(WeightLoader& w, const std::string& prefix, std::int64_t in, std::int64_t out,
                    bool bias) {
  Linear l;
  l.weight = w.get(prefix + ".weight", {out, in});
  if (bias) l.bias = w.get(prefix + ".bias", {out});
  return l;
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  if (kernels::gemv_applies(x, weight)) return kernels::gemv(x, {{&weight, &bias}})[0];
  return at::linear(x, weight, bias);
}

RMSNorm RMSNorm::load(WeightLoader& w, const std::string& prefix, std::int64_t dim, double eps) {
  return RMSNorm{w.get(prefix + ".weight", {dim}), eps};
}

at::Tensor RMSNorm::operator()(const at::Tensor& x) const {
  // transformers Qwen2RMSNorm.forward: variance in fp32, then weight * x.to(input_dtype); one
  // pass per row instead of seven ops with two dtype conversions.
  return kernels::rms_norm(x, weight, eps);
}

LayerNorm LayerNorm::load(WeightLoader& w, const std::string& prefix, std::int64_t dim,
                          double eps) {
  return LayerNorm{w.get(prefix + ".weight", {dim}), w.get(prefix + ".bias", {dim}), eps};
}

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "relu") return Activation::Relu;
  throw UnsupportedError(where + ": activation '" + name +
                         "' (known: silu, gelu, gelu_pytorch_tanh, quick_gelu, relu)");
}

at::Tensor activate(const at::Tensor& x, Activation act) {
  switch (act) {
    case Activation::Silu:
      return at::silu(x);
    case Activation::Gelu:
      return at::gelu(x);
    case Activation::GeluTanh:
      return at::gelu(x, "tanh");
    case Activation::QuickGelu: {
      // x * sigmoid(1.702 * x) with the same roundings, in one buffer instead of three.
      if (kernels::reference_ops()) return x * at::sigmoid(x * 1.702);
      at::Tensor y = x.mul(1.702);
      y.sigmoid_();
      return y.mul_(x);
    }
    case Activation::Relu:
      return at::relu(x);
  }
  return x;
}

at::Tensor gated_mlp(const Linear& gate, const Linear& up, const Linear& down, const at::Tensor& x,
                     Activation act) {
  if (act != Activation::Silu) return down(activate(gate(x), act) * up(x));
  if (kernels::gemv_applies(x, gate.weight)) {
    return down(kernels::gemv_silu_mul(x, {&gate.weight, &gate.bias}, {&up.weight, &up.bias}));
  }
  if (kernels::reference_ops()) return down(at::silu(gate(x)) * up(x));
  at::Tensor g = gate(x);
  kernels::silu_mul_(g, up(x));
  return down(g);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                     const at::Tensor& mask, bool causal, at::Tensor* probs_out,
                     std::int64_t chunk) {
  const std::int64_t b = q.size(0), hq = q.size(1), s = q.size(2), d = q.size(3);
  const std::int64_t hkv = k.size(1), t = k.size(2), dv = v.size(3), rep = hq / hkv;
  if (hkv * rep != hq || k.size(0) != b || v.size(2) != t) {
    throw InputError("attention: q " + c10::str(q.sizes()) + ", k " + c10::str(k.sizes()) + ", v " +
                     c10::str(v.sizes()) + " do not fit");
  }
  // Keys and values as [B*Hkv, T, D] with dense rows (the cache's views already are); q^T k is
  // then one batched GEMM with a transposed operand per chunk.
  auto rows = [](at::Tensor a) {
    a = a.reshape({a.size(0) * a.size(1), a.size(2), a.size(3)});
    return a.stride(2) == 1 && a.stride(1) == a.size(2) ? a : a.contiguous();
  };
  const at::Tensor k3 = rows(k), v3 = rows(v), kt = k3.transpose(1, 2);
  if (kernels::reference_ops()) {
    // The eager attention in plain differentiable ops: scores in the compute dtype, softmax in
    // fp32 with the mask added, query heads of a KV head stacked along the rows.
    const at::Tensor qr = q.reshape({b * hkv, rep * s, d});
    at::Tensor sc = at::bmm(qr, kt).to(at::kFloat) * scale;
    if (mask.defined()) {
      sc = (sc.view({b, hkv, rep, s, t}) + mask.to(at::kFloat).view({b, 1, 1, s, t}))
               .view({b * hkv, rep * s, t});
    }
    const at::Tensor p = at::softmax(sc, -1).to(q.scalar_type());
    if (probs_out != nullptr) *probs_out = p.view({b, hq, s, t});
    return at::bmm(p, v3).view({b, hq, s, dv}).transpose(1, 2).contiguous();
  }
  // q k^T with a head dim of 64-128 runs at 5-15 GFLOP/s through at::bmm (oneDNN and OpenBLAS
  // alike: a small inner dimension and a wide output); the fused kernel computes the scores in
  // fp32 blocks that go straight into the softmax.
  const at::Tensor packed = kernels::pack_keys(k3);
  at::Tensor out = at::empty({b, s, hq, dv}, q.options());
  // About 4 M scores per chunk (8 MB in bf16) and at least 256 rows per key head, so that the
  // GEMMs stay large while the scores never exist whole.
  if (chunk <= 0)
    chunk = std::max<std::int64_t>((std::int64_t{1} << 22) / std::max<std::int64_t>(hq * t, 1),
                                   (256 + rep - 1) / rep);
  if (probs_out != nullptr) chunk = s;
  chunk = std::min(chunk, std::max<std::int64_t>(s, 1));
  // Causal: skip the keys after the chunk's last query. Only when every row has key 0 allowed: a
  // row with every key masked gets uniform weights over all T keys in the reference.
  bool truncate = causal && s > 1 && mask.defined() && probs_out == nullptr;
  if (truncate) truncate = mask.select(3, 0).eq(0).all().item<bool>();
  const std::int64_t past = t - s;
  for (std::int64_t i0 = 0; i0 < s; i0 += chunk) {
    const std::int64_t cq = std::min(chunk, s - i0);
    const std::int64_t tl = truncate ? std::min(t, past + i0 + cq) : t;
    const at::Tensor qc = q.narrow(2, i0, cq).reshape({b * hkv, rep * cq, d});
    at::Tensor mc;
    if (mask.defined()) mc = mask.select(1, 0).narrow(1, i0, cq).narrow(2, 0, tl);
    at::Tensor sc;  // probabilities [B*Hkv, rep*cq, tl]
    if (packed.defined() && (!mc.defined() || mc.scalar_type() == q.scalar_type())) {
      sc = kernels::attention_probs(qc, packed, tl, scale, mc, hq * cq);
    } else {
      sc = at::bmm(qc, kt.narrow(2, 0, tl));
      kernels::softmax_(sc.view({b * hq * cq, tl}), scale, mc, hq * cq);
    }
    const at::Tensor oc = at::bmm(sc, v3.narrow(1, 0, tl));  // [B*Hkv, rep*cq, dv]
    out.narrow(1, i0, cq).copy_(oc.view({b, hq, cq, dv}).transpose(1, 2));
    if (probs_out != nullptr) *probs_out = sc.view({b, hq, s, t});
  }
  return out;
}

at::Tensor attention_shared(const at::Tensor& q,
                            const std::vector<std::pair<at::Tensor, at::Tensor>>& shared,
                            const at::Tensor& k, const at::Tensor& v, double scale,
                            const at::Tensor& mask, at::Tensor* probs_out) {
  const std::int64_t b = q.size(0), hq = q.size(1), s = q.size(2), d = q.size(3);
  if (shared.empty()) throw InputError("attention_shared: no shared segment");
  const std::int64_t hkv = shared.front().first.size(1), dv = shared.front().second.size(3);
  const std::int64_t rep = hq / hkv;
  std::int64_t t = k.defined() ? k.size(2) : 0;
  for (const auto& [sk, sv] : shared) {
    if (sk.size(0) != 1 || sk.size(1) != hkv || sk.size(3) != d || sv.size(2) != sk.size(2)) {
      throw InputError("attention_shared: shared keys " + c10::str(sk.sizes()) + " do not fit q " +
                       c10::str(q.sizes()));
    }
    t += sk.size(2);
  }
  if (hkv * rep != hq || (k.defined() && (k.size(0) != b || k.size(1) != hkv))) {
    throw InputError("attention_shared: q " + c10::str(q.sizes()) + " and own keys " +
                     (k.defined() ? c10::str(k.sizes()) : std::string("(none)")) + " do not fit");
  }
  at::Tensor out = at::empty({b, s, hq, dv}, q.options());
  std::int64_t chunk =
      std::max<std::int64_t>(1, (std::int64_t{1} << 22) / std::max<std::int64_t>(b * hq * t, 1));
  if (probs_out != nullptr) chunk = s;
  const bool own = k.defined() && k.size(2) > 0;
  // The fused q.k^T + softmax kernel over all segments when it applies: each shared segment is
  // packed once with one group per key head and serves every sequence.
  std::vector<at::Tensor> packed;
  at::Tensor v3;
  if (probs_out == nullptr && (!mask.defined() || mask.scalar_type() == q.scalar_type())) {
    for (const auto& [sk, sv] : shared) packed.push_back(kernels::pack_keys(sk[0]));
    if (own) {
      packed.push_back(kernels::pack_keys(k.reshape({b * hkv, k.size(2), d})));
      v3 = v.reshape({b * hkv, v.size(2), dv});
    }
    for (const auto& p : packed) {
      if (!p.defined()) {
        packed.clear();
        break;
      }
    }
  }
  for (std::int64_t i0 = 0; i0 < s; i0 += chunk) {
    const std::int64_t cq = std::min(chunk, s - i0), r = rep * cq;
    // Query heads sharing a key head stacked along rows: [B, Hkv, rep*cq, D].
    const at::Tensor qc = q.narrow(2, i0, cq).reshape({b, hkv, r, d});
    at::Tensor p;  // probabilities [B, Hkv, rep*cq, t] in q's dtype
    if (!packed.empty()) {
      at::Tensor mc;
      if (mask.defined()) mc = mask.select(1, 0).narrow(1, i0, cq);
      p = kernels::attention_probs(qc.reshape({b * hkv, r, d}), packed, t, scale, mc, hq * cq)
              .view({b, hkv, r, t});
    } else {
      // For a shared segment the sequences stack along rows too: [Hkv, B*rep*cq, D].
      const at::Tensor qg = qc.transpose(0, 1).reshape({hkv, b * r, d});
      std::vector<at::Tensor> parts;
      for (const auto& [sk, sv] : shared) {
        parts.push_back(
            at::bmm(qg, sk[0].transpose(1, 2)).view({hkv, b, r, sk.size(2)}).transpose(0, 1));
      }
      if (own) parts.push_back(at::matmul(qc, k.transpose(2, 3)));
      at::Tensor sc = at::cat(parts, -1).to(at::kFloat).mul_(scale);  // [B, Hkv, rep*cq, t]
      if (mask.defined()) {
        sc = (sc.view({b, hkv, rep, cq, t}) +
              mask.narrow(2, i0, cq).to(at::kFloat).view({b, 1, 1, cq, t}))
                 .view({b, hkv, r, t});
      }
      p = at::softmax(sc, -1).to(q.scalar_type());
    }
    // Each segment's probabilities times its values, summed in fp32 and rounded once.
    at::Tensor acc = at::zeros({b, hkv, r, dv}, at::TensorOptions().dtype(at::kFloat));
    std::int64_t off = 0;
    for (const auto& [sk, sv] : shared) {
      const std::int64_t n = sk.size(2);
      const at::Tensor pg = p.narrow(-1, off, n).transpose(0, 1).reshape({hkv, b * r, n});
      acc.add_(at::bmm(pg, sv[0]).view({hkv, b, r, dv}).transpose(0, 1));
      off += n;
    }
    if (own) {
      const at::Tensor po = p.narrow(-1, off, k.size(2));
      acc.add_(v3.defined() ? at::bmm(po.reshape({b * hkv, r, k.size(2)}), v3).view({b, hkv, r, dv})
                            : at::matmul(po, v));
    }
    out.narrow(1, i0, cq).copy_(acc.view({b, hq, cq, dv}).transpose(1, 2));
    if (probs_out != nullptr) *probs_out = p.reshape({b, hq, s, t});
  }
  return out;
}

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

double mask_min(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    case at::kBFloat16:
      return -3.3895313892515355e38;  // torch.finfo(torch.bfloat16).min
    case at::kHalf:
      return -65504.0;
    default:
      return std::numeric_limits<float>::lowest();
  }
}

}  // namespace glimpse::layers
