#include "layers/cached_attention.h"

#include <ATen/Parallel.h>

#include <vector>

#include "glimpse/core/error.h"
#include "kernels/ops.h"
#include "layers/modules.h"

namespace glimpse::layers {

at::Tensor attention_ragged(const at::Tensor& q, const model::KVView& kv, double scale,
                            const at::Tensor& mask) {
  if (!kv.ragged) throw InputError("attention_ragged: the layer has no ragged part");
  const model::HeadSegments& r = *kv.ragged;
  const std::int64_t b = q.size(0), hq = q.size(1), s = q.size(2), d = q.size(3);
  const std::int64_t hkv = r.heads, rep = hq / hkv, dv = r.values.size(1);
  const std::int64_t columns = kv.length(), dense = columns - r.longest;
  if (hkv * rep != hq || r.keys.size(1) != d || (r.rows != 1 && r.rows != b) ||
      (mask.defined() && (mask.size(0) != b || mask.size(-1) != columns))) {
    throw InputError("attention_ragged: q " + c10::str(q.sizes()) +
                     " does not fit a ragged part of " + std::to_string(r.rows) + " x " +
                     std::to_string(hkv) + " heads over " + std::to_string(columns) + " columns" +
                     (mask.defined() ? ", mask " + c10::str(mask.sizes()) : std::string()));
  }
  at::Tensor out = at::empty({b, s, hq, dv}, q.options());
  const bool fused = mask.defined() ? mask.scalar_type() == q.scalar_type() : true;
  // One task per (sequence, KV head): its pieces of keys and values are read in place, the
  // probabilities of all pieces go through one fp32 softmax, and each piece's probabilities times
  // its values are summed in fp32 and rounded once (as attention_shared does).
  at::parallel_for(0, b * hkv, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const std::int64_t bi = i / hkv, h = i % hkv;
      std::vector<at::Tensor> ks, vs;  // [n, D] pieces in column order
      const std::int64_t n = r.length(bi, h);
      if (n > 0) {
        ks.push_back(r.keys.narrow(0, r.begin(bi, h), n));
        vs.push_back(r.values.narrow(0, r.begin(bi, h), n));
      }
      for (const auto& [sk, sv] : kv.shared) {
        ks.push_back(sk[0][h]);
        vs.push_back(sv[0][h]);
      }
      if (kv.keys.defined() && kv.keys.size(2) > 0) {
        ks.push_back(kv.keys[bi][h]);
        vs.push_back(kv.values[bi][h]);
      }
      std::int64_t cols = 0;
      for (const auto& k : ks) cols += k.size(0);
      const at::Tensor qh = q[bi].narrow(0, h * rep, rep).reshape({1, rep * s, d});
      at::Tensor mc;  // [1, S, cols]: the ragged entries unmasked, then the dense columns' mask
      if (mask.defined()) {
        const at::Tensor rest = mask[bi][0].narrow(-1, r.longest, dense);
        mc = at::cat({at::zeros({s, n}, mask.options()), rest}, 1).unsqueeze(0);
      }
      at::Tensor p;  // [rep * S, cols] in q's dtype
      std::vector<at::Tensor> packed;
      if (fused && !kernels::reference_ops()) {
        for (const auto& k : ks) {
          packed.push_back(kernels::pack_keys(k.unsqueeze(0)));
          if (!packed.back().defined()) {
            packed.clear();
            break;
          }
        }
      }
      if (!packed.empty()) {
        p = kernels::attention_probs(qh, packed, cols, scale, mc, rep * s)[0];
      } else {
        std::vector<at::Tensor> parts;
        for (const auto& k : ks) parts.push_back(at::matmul(qh[0], k.t()));
        at::Tensor sc = at::cat(parts, 1).to(at::kFloat).mul_(scale);
        if (mc.defined()) sc = (sc.view({rep, s, cols}) + mc.to(at::kFloat)).view({rep * s, cols});
        p = at::softmax(sc, -1).to(q.scalar_type());
      }
      at::Tensor acc = at::zeros({rep * s, dv}, at::TensorOptions().dtype(at::kFloat));
      std::int64_t off = 0;
      for (const auto& v : vs) {
        const std::int64_t len = v.size(0);
        acc.add_(at::matmul(p.narrow(1, off, len), v));
        off += len;
      }
      out[bi].narrow(1, h * rep, rep).copy_(acc.view({rep, s, dv}).transpose(0, 1));
    }
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> padded_keys(const model::KVView& kv, std::int64_t batch) {
  const model::HeadSegments& r = *kv.ragged;
  const std::int64_t columns = kv.length(), d = r.keys.size(1);
  at::Tensor keys = at::zeros({batch, r.heads, columns, d}, r.keys.options());
  at::Tensor holes = at::zeros({batch, r.heads, columns}, at::TensorOptions().dtype(at::kBool));
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t h = 0; h < r.heads; ++h) {
      const std::int64_t n = r.length(b, h);
      keys[b][h].narrow(0, 0, n).copy_(r.keys.narrow(0, r.begin(b, h), n));
      holes[b][h].narrow(0, n, r.longest - n).fill_(true);
    }
  }
  std::int64_t at = r.longest;
  for (const auto& [sk, sv] : kv.shared) {
    keys.narrow(2, at, sk.size(2)).copy_(sk.expand({batch, -1, -1, -1}));
    at += sk.size(2);
  }
  if (kv.keys.defined() && kv.keys.size(2) > 0) keys.narrow(2, at, kv.keys.size(2)).copy_(kv.keys);
  return {keys, holes};
}

at::Tensor cached_attention(const at::Tensor& q, const model::KVView& kv, double scale,
                            const at::Tensor& mask, at::Tensor* probs_out, std::int64_t layer) {
  if (kv.ragged) {
    if (probs_out != nullptr) {
      throw UnsupportedError("blocks." + std::to_string(layer) +
                             ".attn: attention outputs of a cache kept per head are not supported");
    }
    return attention_ragged(q, kv, scale, mask);
  }
  if (kv.shared.empty()) {
    return attention(q, kv.keys, kv.values, scale, mask, /*causal=*/true, probs_out);
  }
  return attention_shared(q, kv.shared, kv.keys, kv.values, scale, mask, probs_out);
}

}  // namespace glimpse::layers
