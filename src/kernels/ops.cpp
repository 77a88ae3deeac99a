#include "kernels/ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "kernels/cpu_kernels.h"

namespace glimpse::kernels {
namespace {

std::atomic<bool>& switch_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("GLIMPSE_NO_KERNELS");
    return !(e != nullptr && *e != '\0' && *e != '0');
  }()};
  return on;
}

bool float_or_bf16(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16;
}

std::uint16_t* bf16_ptr(const at::Tensor& t) {
  return reinterpret_cast<std::uint16_t*>(t.data_ptr<at::BFloat16>());
}

// A [Bm, P, T] mask (last dim dense) as the kernels read it: score row r uses
// mask[r / group, r % P]. No mask for an undefined tensor.
avx512::MaskSpec mask_spec(const at::Tensor& mask, std::int64_t group) {
  avx512::MaskSpec ms;
  if (mask.defined()) {
    ms.data = mask.data_ptr();
    ms.ld = mask.stride(1);
    ms.batch_ld = mask.stride(0);
    ms.period = mask.size(1);
    ms.group = group;
  }
  return ms;
}

// Rows per parallel task so that a task has at least `work` elements.
std::int64_t grain_rows(std::int64_t cols, std::int64_t work = 32768) {
  return std::max<std::int64_t>(1, work / std::max<std::int64_t>(cols, 1));
}

}  // namespace

namespace {
thread_local bool reference_mode = false;
}  // namespace

namespace {

// apply_rotary_pos_emb: x * cos + rotate_half(x) * sin (cos, sin broadcast over heads), in fp32
// when x is bf16 and the tables fp32, rounded once.
at::Tensor rotated(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor c = cos.unsqueeze(2), sn = sin.unsqueeze(2);
  const std::int64_t half = x.size(3) / 2;
  const bool f32math = x.scalar_type() == at::kBFloat16 && cos.scalar_type() == at::kFloat;
  const at::Tensor xf = f32math ? x.to(at::kFloat) : x;
  const at::Tensor rot = at::cat({-xf.narrow(-1, half, half), xf.narrow(-1, 0, half)}, -1);
  return (xf * c + rot * sn).to(x.scalar_type());
}

}  // namespace

bool enabled() {
  return !reference_mode && switch_flag().load() && avx512_available();
}
void set_enabled(bool on) {
  switch_flag().store(on);
}

bool reference_ops() {
  return reference_mode;
}
ReferenceOps::ReferenceOps(bool on) : previous_(reference_mode) {
  reference_mode = previous_ || on;
}
ReferenceOps::~ReferenceOps() {
  reference_mode = previous_;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const std::int64_t dim = x.size(-1);
  if (!enabled() || !float_or_bf16(x) || weight.scalar_type() != x.scalar_type() ||
      !weight.is_contiguous() || x.numel() == 0) {
    // transformers Qwen2RMSNorm.forward: variance in fp32, then weight * x.to(input_dtype).
    const at::Tensor h = x.to(at::kFloat);
    const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
    return weight * (h * at::rsqrt(variance + eps)).to(x.scalar_type());
  }
  const at::Tensor xc = x.stride(-1) == 1 && x.dim() == 2 ? x : x.contiguous();
  const std::int64_t rows = xc.numel() / dim, ld = xc.dim() == 2 ? xc.stride(0) : dim;
  at::Tensor out = at::empty(x.sizes(), x.options());
  const auto feps = static_cast<float>(eps);
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  at::parallel_for(0, rows, grain_rows(dim), [&](std::int64_t r0, std::int64_t r1) {
    if (bf16) {
      avx512::rms_norm_bf16(bf16_ptr(xc) + r0 * ld, ld, bf16_ptr(weight), bf16_ptr(out) + r0 * dim,
                            r1 - r0, dim, feps);
    } else {
      avx512::rms_norm_f32(xc.data_ptr<float>() + r0 * ld, ld, weight.data_ptr<float>(),
                           out.data_ptr<float>() + r0 * dim, r1 - r0, dim, feps);
    }
  });
  return out;
}

void rope_(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 3, "rope_: expected x [B, S, H, D], cos [B, S, D]");
  const std::int64_t b = x.size(0), s = x.size(1), heads = x.size(2), d = x.size(3);
  const bool dense_rows =
      x.stride(3) == 1 && x.stride(2) == d && (b == 1 || x.stride(0) == s * x.stride(1));
  const bool f32math = x.scalar_type() == at::kBFloat16 && cos.scalar_type() == at::kFloat;
  const bool same = cos.scalar_type() == x.scalar_type();
  if (!enabled() || !float_or_bf16(x) || !dense_rows || d % 2 != 0 || !(same || f32math) ||
      sin.scalar_type() != cos.scalar_type()) {
    x.copy_(rotated(x, cos, sin));
    return;
  }
  const at::Tensor c = cos.contiguous(), sn = sin.contiguous();
  const std::int64_t positions = b * s, ld = x.stride(1);
  at::parallel_for(
      0, positions, grain_rows(heads * d, 16384), [&](std::int64_t p0, std::int64_t p1) {
        const std::int64_t n = p1 - p0;
        if (f32math) {
          avx512::rope_bf16_f32math(bf16_ptr(x) + p0 * ld, ld, c.data_ptr<float>() + p0 * d,
                                    sn.data_ptr<float>() + p0 * d, n, heads, d);
        } else if (x.scalar_type() == at::kBFloat16) {
          avx512::rope_bf16_round(bf16_ptr(x) + p0 * ld, ld, bf16_ptr(c) + p0 * d,
                                  bf16_ptr(sn) + p0 * d, n, heads, d);
        } else {
          avx512::rope_f32(x.data_ptr<float>() + p0 * ld, ld, c.data_ptr<float>() + p0 * d,
                           sn.data_ptr<float>() + p0 * d, n, heads, d);
        }
      });
}

at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (!reference_mode) {
    rope_(x, cos, sin);
    return x;
  }
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 3, "rope: expected x [B, S, H, D], cos [B, S, D]");
  return rotated(x, cos, sin);
}

void softmax_(const at::Tensor& scores, double scale, const at::Tensor& mask, std::int64_t group) {
  TORCH_CHECK(scores.dim() == 2, "softmax_: expected scores [R, T]");
  const std::int64_t rows = scores.size(0), cols = scores.size(1);
  const bool has_mask = mask.defined();
  const bool ok = enabled() && float_or_bf16(scores) && scores.stride(1) == 1 &&
                  (!has_mask || (mask.dim() == 3 && mask.stride(2) == 1 &&
                                 mask.scalar_type() == scores.scalar_type()));
  if (!ok) {
    at::Tensor f = scores.to(at::kFloat) * scale;
    if (has_mask) {
      const std::int64_t bm = mask.size(0), p = mask.size(1);
      f = (f.view({bm, group / p, p, cols}) + mask.to(at::kFloat).unsqueeze(1)).view({rows, cols});
    }
    scores.copy_(at::softmax(f, -1));
    return;
  }
  const avx512::MaskSpec ms = mask_spec(mask, group);
  const bool bf16 = scores.scalar_type() == at::kBFloat16;
  const std::int64_t ld = scores.stride(0);
  const auto fscale = static_cast<float>(scale);
  at::parallel_for(0, rows, grain_rows(cols), [&](std::int64_t r0, std::int64_t r1) {
    std::vector<float> tmp(static_cast<std::size_t>(cols));
    if (bf16) {
      avx512::softmax_bf16(bf16_ptr(scores), ld, r0, r1, cols, fscale, ms, tmp.data());
    } else {
      avx512::softmax_f32(scores.data_ptr<float>(), ld, r0, r1, cols, fscale, ms, tmp.data());
    }
  });
}

at::Tensor pack_keys(const at::Tensor& k) {
  if (!enabled() || k.dim() != 3) return at::Tensor();
  if (k.scalar_type() == at::kFloat) return k.transpose(1, 2).contiguous();
  if (k.scalar_type() != at::kBFloat16 || !avx512_bf16_available() || k.size(2) % 2 != 0)
    return at::Tensor();
  // Two bf16 dims as one int32: [G, T, D/2] -> [G, D/2, T].
  return k.contiguous().view(at::kInt).transpose(1, 2).contiguous();
}

at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& packed, std::int64_t cols,
                           double scale, const at::Tensor& mask, std::int64_t group) {
  return attention_probs(q, std::vector<at::Tensor>{packed}, cols, scale, mask, group);
}

at::Tensor attention_probs(const at::Tensor& q, const std::vector<at::Tensor>& segments,
                           std::int64_t cols, double scale, const at::Tensor& mask,
                           std::int64_t group) {
  const at::Tensor qc = q.stride(2) == 1 ? q : q.contiguous();
  const std::int64_t g = qc.size(0), rows = qc.size(1), d = qc.size(2);
  at::Tensor probs = at::empty({g, rows, cols}, q.options());
  const avx512::MaskSpec ms = mask_spec(mask, group);
  const bool bf16 = q.scalar_type() == at::kBFloat16;
  constexpr std::int64_t kRows = avx512::kQkRows;
  const std::int64_t blocks = (rows + kRows - 1) / kRows;
  const auto fscale = static_cast<float>(scale);
  at::parallel_for(0, g * blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> buf(static_cast<std::size_t>(kRows * cols)), tmp(cols);
    for (std::int64_t blk = b0; blk < b1; ++blk) {
      const std::int64_t gi = blk / blocks, r0 = (blk % blocks) * kRows;
      const std::int64_t nr = std::min(kRows, rows - r0);
      const std::int64_t row = gi * rows + r0;  // global row: mask lookup
      // The scores of each segment side by side in one row block; segment s serves query group
      // gi from its group gi % G_s (a prefix shared by the sequences has one group per head).
      std::int64_t c0 = 0;
      for (const at::Tensor& packed : segments) {
        if (c0 >= cols) break;
        const std::int64_t n = std::min(packed.size(2), cols - c0), ldk = packed.size(2);
        const std::int64_t pg = gi % packed.size(0);
        if (bf16) {
          const auto* kp = reinterpret_cast<const std::uint32_t*>(packed.data_ptr<int>()) +
                           pg * packed.stride(0);
          avx512::qk_bf16(bf16_ptr(qc) + gi * qc.stride(0) + r0 * qc.stride(1), qc.stride(1), nr,
                          kp, ldk, n, d / 2, buf.data() + c0, cols);
        } else {
          avx512::qk_f32(qc.data_ptr<float>() + gi * qc.stride(0) + r0 * qc.stride(1), qc.stride(1),
                         nr, packed.data_ptr<float>() + pg * packed.stride(0), ldk, n, d,
                         buf.data() + c0, cols);
        }
        c0 += n;
      }
      if (bf16) {
        avx512::softmax_rows_to_bf16(buf.data(), cols, bf16_ptr(probs) + row * cols, cols, row,
                                     row + nr, cols, fscale, ms, tmp.data());
      } else {
        avx512::softmax_rows_to_f32(buf.data(), cols, probs.data_ptr<float>() + row * cols, cols,
                                    row, row + nr, cols, fscale, ms, tmp.data());
      }
    }
  });
  return probs;
}

void silu_mul_(const at::Tensor& gate, const at::Tensor& up) {
  if (!enabled() || !float_or_bf16(gate) || up.scalar_type() != gate.scalar_type() ||
      !gate.is_contiguous() || !up.is_contiguous() || gate.sizes() != up.sizes()) {
    gate.copy_(at::silu(gate) * up);
    return;
  }
  const std::int64_t n = gate.numel();
  const bool bf16 = gate.scalar_type() == at::kBFloat16;
  at::parallel_for(0, n, 65536, [&](std::int64_t i0, std::int64_t i1) {
    if (bf16) {
      avx512::silu_mul_bf16(bf16_ptr(gate) + i0, bf16_ptr(up) + i0, i1 - i0);
    } else {
      avx512::silu_mul_f32(gate.data_ptr<float>() + i0, up.data_ptr<float>() + i0, i1 - i0);
    }
  });
}

static_assert(kGemvMaxInputs == avx512::kGemvMaxInputs);

bool gemv_applies(const at::Tensor& x, const at::Tensor& weight) {
  if (!enabled() || x.dim() == 0 || x.scalar_type() != weight.scalar_type() || weight.dim() != 2 ||
      weight.stride(1) != 1 || x.size(-1) == 0 || x.size(-1) != weight.size(1))
    return false;
  const std::int64_t inputs = x.numel() / x.size(-1);
  if (inputs < 1 || inputs > kGemvMaxInputs) return false;
  if (x.scalar_type() == at::kBFloat16) return avx512_bf16_available();
  return x.scalar_type() == at::kFloat;
}

namespace {

constexpr std::int64_t kGemvMaxRows = 256;  // rows per kernel call at most (the fp32 buffer)

// Rows of one weight matrix for a parallel task, for every input row of x (dense [inputs, K]):
// out[i * kGemvMaxRows + row - r0].
void gemv_rows(const at::Tensor& x, const LinearRef& l, std::int64_t r0, std::int64_t r1,
               float* out) {
  const at::Tensor& w = *l.weight;
  const std::int64_t k = w.size(1), inputs = x.numel() / k;
  const bool has_bias = l.bias != nullptr && l.bias->defined();
  if (x.scalar_type() == at::kBFloat16) {
    avx512::gemv_batch_bf16(bf16_ptr(w), w.stride(0), bf16_ptr(x), k, inputs, k,
                            has_bias ? bf16_ptr(*l.bias) : nullptr, r0, r1, out, kGemvMaxRows);
  } else {
    avx512::gemv_batch_f32(w.data_ptr<float>(), w.stride(0), x.data_ptr<float>(), k, inputs, k,
                           has_bias ? l.bias->data_ptr<float>() : nullptr, r0, r1, out,
                           kGemvMaxRows);
  }
}

// Smallest claim: about 64 KB of weights, so the last claims still stream a while.
std::int64_t gemv_min_rows(const at::Tensor& w) {
  const std::int64_t row_bytes = w.size(1) * static_cast<std::int64_t>(w.element_size());
  return std::clamp<std::int64_t>((std::int64_t{64} << 10) / std::max<std::int64_t>(row_bytes, 1),
                                  1, kGemvMaxRows);
}

// Runs body(begin, end) over [0, n) in ranges the threads claim as they become free, as
// OpenMP's guided schedule: a claim takes remaining / (2 x threads) rows, at least min_rows.
// Decode's GEMVs are bandwidth-bound and short (0.05-1 ms). Long first claims keep each core on
// one sequential stream; the short last ones mean a core slowed by an interrupt or a neighbour
// on the host does not leave the other waiting at the barrier. Each row is computed whole by
// one thread, so results do not depend on the claims.
template <typename F>
void parallel_guided(std::int64_t n, std::int64_t min_rows, const F& body) {
  std::atomic<std::int64_t> next{0};
  const std::int64_t threads =
      std::max<std::int64_t>(1, std::min<std::int64_t>(at::get_num_threads(), n / min_rows));
  at::parallel_for(0, threads, 1, [&](std::int64_t, std::int64_t) {
    std::int64_t begin = next.load(std::memory_order_relaxed);
    while (begin < n) {
      const std::int64_t take = std::max(min_rows, (n - begin) / (2 * threads));
      const std::int64_t end = std::min(n, begin + take);
      if (next.compare_exchange_weak(begin, end, std::memory_order_relaxed)) {
        body(begin, end);
        begin = next.load(std::memory_order_relaxed);
      }
    }
  });
}

std::vector<std::int64_t> out_shape(const at::Tensor& x, std::int64_t n) {
  std::vector<std::int64_t> s(x.sizes().begin(), x.sizes().end());
  s.back() = n;
  return s;
}

}  // namespace

std::vector<at::Tensor> gemv(const at::Tensor& x, const std::vector<LinearRef>& linears) {
  const at::Tensor xc = x.contiguous();
  std::vector<at::Tensor> outs;
  std::vector<std::int64_t> first_row{0};  // the matrices' rows, one after the other
  std::int64_t min_rows = kGemvMaxRows;
  for (const auto& l : linears) {
    const std::int64_t n = l.weight->size(0);
    outs.push_back(at::empty(out_shape(x, n), x.options()));
    first_row.push_back(first_row.back() + n);
    min_rows = std::min(min_rows, gemv_min_rows(*l.weight));
  }
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  const std::int64_t inputs = xc.numel() / xc.size(-1);
  parallel_guided(first_row.back(), min_rows, [&](std::int64_t begin, std::int64_t end) {
    float buf[kGemvMaxInputs * kGemvMaxRows];
    auto m = static_cast<std::size_t>(std::upper_bound(first_row.begin(), first_row.end(), begin) -
                                      first_row.begin() - 1);
    for (std::int64_t g = begin; g < end;) {
      while (g >= first_row[m + 1]) ++m;
      const std::int64_t r0 = g - first_row[m];
      const std::int64_t r1 = std::min({end, first_row[m + 1], g + kGemvMaxRows}) - first_row[m];
      gemv_rows(xc, linears[m], r0, r1, buf);
      const std::int64_t n = first_row[m + 1] - first_row[m];
      for (std::int64_t i = 0; i < inputs; ++i) {
        const float* b = buf + i * kGemvMaxRows;
        if (bf16) {
          avx512::round_to_bf16(b, bf16_ptr(outs[m]) + i * n + r0, r1 - r0);
        } else {
          std::copy(b, b + (r1 - r0), outs[m].data_ptr<float>() + i * n + r0);
        }
      }
      g += r1 - r0;
    }
  });
  return outs;
}

at::Tensor gemv_silu_mul(const at::Tensor& x, const LinearRef& gate, const LinearRef& up) {
  const at::Tensor xc = x.contiguous();
  const std::int64_t n = gate.weight->size(0);
  at::Tensor out = at::empty(out_shape(x, n), x.options());
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  const std::int64_t inputs = xc.numel() / xc.size(-1);
  parallel_guided(n, gemv_min_rows(*gate.weight), [&](std::int64_t begin, std::int64_t end) {
    float g[kGemvMaxInputs * kGemvMaxRows], u[kGemvMaxInputs * kGemvMaxRows];
    for (std::int64_t r0 = begin; r0 < end; r0 += kGemvMaxRows) {
      // Gate rows, then the same up rows: two sequential streams in turn.
      const std::int64_t r1 = std::min(end, r0 + kGemvMaxRows);
      gemv_rows(xc, gate, r0, r1, g);
      gemv_rows(xc, up, r0, r1, u);
      for (std::int64_t i = 0; i < inputs; ++i) {
        const std::int64_t o = i * kGemvMaxRows;
        if (bf16) {
          avx512::silu_mul_rows_bf16(g + o, u + o, bf16_ptr(out) + i * n + r0, r1 - r0);
        } else {
          avx512::silu_mul_rows_f32(g + o, u + o, out.data_ptr<float>() + i * n + r0, r1 - r0);
        }
      }
    }
  });
  return out;
}

}  // namespace glimpse::kernels
