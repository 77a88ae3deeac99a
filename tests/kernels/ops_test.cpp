// The fused CPU kernels against the plain ATen expressions they replace: random inputs, odd sizes
// (tails of the 16-lane loops), both dtypes. bf16 results must agree bitwise where the kernel
// repeats ATen's roundings (RMSNorm, RoPE) and within one bf16 ulp where an fp32 intermediate
// differs in its last bits (exp, sums in another order).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/cpu_kernels.h"
#include "kernels/ops.h"
#include "layers/modules.h"
#include "tensor_testing.h"

namespace glimpse::kernels {
namespace {

using test::all_close;

std::uint16_t* bf16_ptr(const at::Tensor& t) {
  return reinterpret_cast<std::uint16_t*>(t.data_ptr<at::BFloat16>());
}

class KernelsTest : public ::testing::TestWithParam<c10::ScalarType> {
 protected:
  void SetUp() override {
    if (!avx512_available()) GTEST_SKIP() << "this CPU has no AVX-512: only the ATen path runs";
    at::manual_seed(7);
  }
  void TearDown() override { set_enabled(true); }
  c10::ScalarType dtype() const { return GetParam(); }
  bool bf16() const { return dtype() == at::kBFloat16; }
  // Tolerances of one result element: bf16 one ulp (relative 2^-8), fp32 a few ulps.
  double atol() const { return bf16() ? 1e-2 : 1e-5; }
  double rtol() const { return bf16() ? 8e-3 : 1e-5; }
};

template <typename F>
at::Tensor reference(F f) {
  set_enabled(false);
  at::Tensor r = f();
  set_enabled(true);
  return r;
}

TEST_P(KernelsTest, RmsNormMatchesAten) {
  for (const std::int64_t dim : {1, 15, 16, 33, 1536}) {
    const at::Tensor x = at::randn({3, 5, dim}).to(dtype()) * 3;
    const at::Tensor w = at::randn({dim}).to(dtype());
    const at::Tensor expect = reference([&] { return rms_norm(x, w, 1e-6); });
    const at::Tensor got = rms_norm(x, w, 1e-6);
    EXPECT_TRUE(all_close(got, expect, atol(), rtol(), "rms_norm dim " + std::to_string(dim)));
  }
  // A strided 2-D input (rows further apart than dim).
  const at::Tensor wide = at::randn({7, 40}).to(dtype());
  const at::Tensor x = wide.narrow(1, 3, 33), w = at::randn({33}).to(dtype());
  EXPECT_TRUE(all_close(rms_norm(x, w, 1e-5), reference([&] { return rms_norm(x, w, 1e-5); }),
                        atol(), rtol(), "rms_norm strided"));
}

TEST_P(KernelsTest, RopeMatchesAten) {
  for (const std::int64_t d : {2, 18, 34, 128}) {
    const at::Tensor x = at::randn({2, 7, 3, d}).to(dtype());
    const at::Tensor cos = at::randn({2, 7, d}).to(dtype()), sin = at::randn({2, 7, d}).to(dtype());
    const at::Tensor expect = x.clone(), got = x.clone();
    reference([&] {
      rope_(expect, cos, sin);
      return expect;
    });
    rope_(got, cos, sin);
    EXPECT_TRUE(all_close(got, expect, atol(), rtol(), "rope d " + std::to_string(d)));
    if (bf16()) {
      EXPECT_TRUE(got.equal(expect)) << "bf16 RoPE repeats ATen's roundings: bitwise equal";
    }
  }
  // Vision: q and k inside a qkv projection (positions 3 heads apart), fp32 tables.
  const std::int64_t heads = 2, d = 20, n = 9;
  const at::Tensor qkv = at::randn({1, n, 3 * heads, d}).to(dtype());
  const at::Tensor cos = at::randn({1, n, d}), sin = at::randn({1, n, d});
  const at::Tensor expect = qkv.clone(), got = qkv.clone();
  reference([&] {
    rope_(expect.narrow(2, 0, 2 * heads), cos, sin);
    return expect;
  });
  rope_(got.narrow(2, 0, 2 * heads), cos, sin);
  EXPECT_TRUE(all_close(got, expect, atol(), rtol(), "rope f32 tables"));
  EXPECT_TRUE(got.narrow(2, 2 * heads, heads).equal(qkv.narrow(2, 2 * heads, heads)))
      << "v untouched";
}

TEST_P(KernelsTest, SoftmaxMatchesAten) {
  for (const std::int64_t cols : {1, 17, 64, 1000}) {
    // 2 batches x 3 heads x 5 query rows; mask [2, 5, cols] broadcast over heads.
    const at::Tensor scores = (at::randn({30, cols}) * 4).to(dtype());
    at::Tensor mask = at::zeros({2, 5, cols}).to(dtype());
    if (cols > 1) mask.narrow(2, cols / 2, cols - cols / 2).fill_(layers::mask_min(dtype()));
    for (const bool masked : {false, true}) {
      const at::Tensor m = masked ? mask : at::Tensor();
      const at::Tensor expect = scores.clone(), got = scores.clone();
      reference([&] {
        softmax_(expect, 0.125, m, 15);
        return expect;
      });
      softmax_(got, 0.125, m, 15);
      EXPECT_TRUE(all_close(got, expect, bf16() ? 4e-3 : 1e-6, rtol(),
                            "softmax cols " + std::to_string(cols)));
      if (masked && cols > 1) {
        EXPECT_TRUE(got.narrow(1, cols / 2, cols - cols / 2).eq(0).all().item<bool>())
            << "masked keys get exactly zero weight";
      }
    }
  }
  // Every key masked: uniform weights, as the reference.
  const at::Tensor all =
      at::full({2, 9}, layers::mask_min(dtype()), at::TensorOptions().dtype(dtype()));
  const at::Tensor s = at::randn({2, 9}).to(dtype());
  softmax_(s, 1.0, all.unsqueeze(0), 2);
  EXPECT_TRUE(all_close(s, at::full({2, 9}, 1.0 / 9), 4e-3, 0, "fully masked row"));
}

TEST_P(KernelsTest, SiluMulMatchesFp32Silu) {
  for (const std::int64_t n : {1, 31, 70000}) {
    const at::Tensor g = (at::randn({n}) * 5).to(dtype()), u = at::randn({n}).to(dtype());
    // silu in fp32, rounded to the dtype, times up (the reference's two roundings). Torch 1.13's
    // own bf16 silu also rounds inside (1 + exp(-x) in bf16: silu(5.56) = 5.56), so it is not
    // the yardstick here.
    const at::Tensor expect = at::silu(g.to(at::kFloat)).to(dtype()) * u;
    const at::Tensor got = g.clone();
    silu_mul_(got, u);
    // exp differs from Sleef's in the last fp32 bits, which can flip one rounding of the silu
    // result and then of the product.
    EXPECT_TRUE(all_close(got, expect, atol(), 2 * rtol(), "silu_mul n " + std::to_string(n)));
  }
}

TEST_P(KernelsTest, GemvMatchesLinear) {
  if (bf16() && !avx512_bf16_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (const std::int64_t k : {1, 31, 32, 100, 1536}) {
    for (const std::int64_t n : {1, 5, 67, 300}) {
      const at::Tensor x = at::randn({1, 1, k}).to(dtype());
      const at::Tensor w = (at::randn({n, k}) / std::sqrt(static_cast<double>(k))).to(dtype());
      const at::Tensor b = at::randn({n}).to(dtype()), w2 = at::randn({n + 3, k}).to(dtype());
      ASSERT_TRUE(gemv_applies(x, w));
      const auto got = gemv(x, {{&w, &b}, {&w2, nullptr}});
      const std::string what = "gemv k " + std::to_string(k) + " n " + std::to_string(n);
      // The reference in fp32 from the same inputs: products of bf16 pairs are exact in fp32.
      const at::Tensor e0 = at::linear(x.to(at::kFloat), w.to(at::kFloat), b.to(at::kFloat));
      const at::Tensor e1 = at::linear(x.to(at::kFloat), w2.to(at::kFloat));
      EXPECT_TRUE(all_close(got[0], e0.to(dtype()), atol(), rtol(), what));
      EXPECT_TRUE(all_close(got[1], e1.to(dtype()), atol() * 3, rtol(), what + " (2nd)"));
      EXPECT_EQ(got[0].sizes(), (std::vector<std::int64_t>{1, 1, n}));
      const at::Tensor g = gemv_silu_mul(x, {&w, &b}, {&w2, nullptr});
      const at::Tensor u = e1.narrow(-1, 0, n).to(dtype());
      EXPECT_TRUE(
          all_close(g, at::silu(e0.to(dtype())) * u, atol() * 3, rtol() * 2, what + " silu_mul"));
    }
  }
  const at::Tensor w8 = at::randn({4, 8}).to(dtype());
  EXPECT_TRUE(gemv_applies(at::randn({kGemvMaxInputs, 1, 8}).to(dtype()), w8));
  EXPECT_FALSE(gemv_applies(at::randn({kGemvMaxInputs + 1, 8}).to(dtype()), w8));
  EXPECT_FALSE(gemv_applies(at::randn({0, 8}).to(dtype()), w8));
  EXPECT_FALSE(gemv_applies(at::randn({1, 7}).to(dtype()), w8)) << "K differs from the weight's";
}

// Batched decode: m rows of x (one token of each of m sequences) share each weight row read. K
// not a multiple of 32 (and below 32) leaves every tail of the kernels' blocks; 67 weight rows
// leave a partial block of rows at the end.
TEST_P(KernelsTest, GemvBatchMatchesLinear) {
  if (bf16() && !avx512_bf16_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (const std::int64_t m : {2, 3, 5, 8}) {
    for (const std::int64_t k : {7, 100, 455}) {
      for (const std::int64_t n : {1, 67}) {
        const at::Tensor x = at::randn({m, 1, k}).to(dtype());
        const at::Tensor w = (at::randn({n, k}) / std::sqrt(static_cast<double>(k))).to(dtype());
        const at::Tensor b = at::randn({n}).to(dtype()), w2 = at::randn({n + 3, k}).to(dtype());
        ASSERT_TRUE(gemv_applies(x, w));
        const auto got = gemv(x, {{&w, &b}, {&w2, nullptr}});
        const std::string what =
            "gemv m " + std::to_string(m) + " k " + std::to_string(k) + " n " + std::to_string(n);
        const at::Tensor e0 = at::linear(x.to(at::kFloat), w.to(at::kFloat), b.to(at::kFloat));
        const at::Tensor e1 = at::linear(x.to(at::kFloat), w2.to(at::kFloat));
        EXPECT_EQ(got[0].sizes(), (std::vector<std::int64_t>{m, 1, n}));
        EXPECT_EQ(got[1].sizes(), (std::vector<std::int64_t>{m, 1, n + 3}));
        EXPECT_TRUE(all_close(got[0], e0.to(dtype()), atol(), rtol(), what));
        EXPECT_TRUE(all_close(got[1], e1.to(dtype()), atol() * 3, rtol(), what + " (2nd)"));
        const at::Tensor g = gemv_silu_mul(x, {&w, &b}, {&w2, nullptr});
        const at::Tensor u = e1.narrow(-1, 0, n).to(dtype());
        EXPECT_TRUE(
            all_close(g, at::silu(e0.to(dtype())) * u, atol() * 3, rtol() * 2, what + " silu_mul"));
      }
    }
  }
  // Rows given as [1, m, K] (one sequence's m positions) and as a 2-D [m, K].
  const at::Tensor w = (at::randn({40, 100}) / 10).to(dtype());
  for (const auto& shape :
       {std::vector<std::int64_t>{1, 4, 100}, std::vector<std::int64_t>{4, 100}}) {
    const at::Tensor x = at::randn(shape).to(dtype());
    const at::Tensor got = gemv(x, {{&w, nullptr}})[0];
    EXPECT_TRUE(all_close(got, at::linear(x.to(at::kFloat), w.to(at::kFloat)).to(dtype()), atol(),
                          rtol(), "gemv [.., 4, 100]"));
  }
}

// A batched decode of m sequences is checked against m runs of one sequence: each row of a batch
// must be bitwise the row computed alone, whatever the other rows and the batch size.
TEST_P(KernelsTest, GemvBatchRowsEqualTheRowAlone) {
  if (bf16() && !avx512_bf16_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (const std::int64_t k : {7, 455, 1536}) {
    const at::Tensor x = at::randn({kGemvMaxInputs, 1, k}).to(dtype());
    for (const std::int64_t n : {1, 6, 301}) {
      const at::Tensor w = (at::randn({n, k}) / std::sqrt(static_cast<double>(k))).to(dtype());
      const at::Tensor w2 = (at::randn({n, k}) / std::sqrt(static_cast<double>(k))).to(dtype());
      const at::Tensor b = at::randn({n}).to(dtype());
      std::vector<at::Tensor> alone, alone_mlp;
      for (std::int64_t i = 0; i < kGemvMaxInputs; ++i) {
        const at::Tensor xi = x.narrow(0, i, 1);
        alone.push_back(gemv(xi, {{&w, &b}})[0]);
        alone_mlp.push_back(gemv_silu_mul(xi, {&w, &b}, {&w2, nullptr}));
      }
      for (std::int64_t m = 2; m <= kGemvMaxInputs; ++m) {
        const at::Tensor xm = x.narrow(0, 0, m);
        const at::Tensor got = gemv(xm, {{&w, &b}})[0];
        const at::Tensor got_mlp = gemv_silu_mul(xm, {&w, &b}, {&w2, nullptr});
        for (std::int64_t i = 0; i < m; ++i) {
          EXPECT_TRUE(got[i].equal(alone[i][0]))
              << "k " << k << " n " << n << " m " << m << " row " << i;
          EXPECT_TRUE(got_mlp[i].equal(alone_mlp[i][0]))
              << "silu_mul k " << k << " n " << n << " m " << m << " row " << i;
        }
      }
    }
  }
}

// The same in fp32 before the rounding to bf16 (which would hide most differences in the last
// bits): the batched kernel's sums are those of the one-row kernel, for every row range, every
// batch size and every tail of k.
TEST_P(KernelsTest, GemvBatchKernelSumsAsTheOneRowKernel) {
  if (bf16() && !avx512_bf16_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const std::int64_t n = 23, r0 = 2, r1 = 21, ldo = 32;
  for (const std::int64_t k : {1, 7, 31, 32, 100, 128, 455, 1536}) {
    const at::Tensor w = at::randn({n, k + 5}).to(dtype()).narrow(1, 0, k);  // rows k + 5 apart
    const at::Tensor x = at::randn({avx512::kGemvMaxInputs, k + 3}).to(dtype());
    const at::Tensor b = at::randn({n}).to(dtype());
    for (const bool bias : {false, true}) {
      std::vector<float> one(static_cast<std::size_t>(avx512::kGemvMaxInputs * ldo));
      for (std::int64_t i = 0; i < avx512::kGemvMaxInputs; ++i) {
        if (bf16()) {
          avx512::gemv_bf16(bf16_ptr(w), w.stride(0), bf16_ptr(x) + i * x.stride(0), k,
                            bias ? bf16_ptr(b) : nullptr, r0, r1, one.data() + i * ldo);
        } else {
          avx512::gemv_f32(w.data_ptr<float>(), w.stride(0), x.data_ptr<float>() + i * x.stride(0),
                           k, bias ? b.data_ptr<float>() : nullptr, r0, r1, one.data() + i * ldo);
        }
      }
      for (std::int64_t m = 1; m <= avx512::kGemvMaxInputs; ++m) {
        std::vector<float> got(one.size(), -1.0f);
        if (bf16()) {
          avx512::gemv_batch_bf16(bf16_ptr(w), w.stride(0), bf16_ptr(x), x.stride(0), m, k,
                                  bias ? bf16_ptr(b) : nullptr, r0, r1, got.data(), ldo);
        } else {
          avx512::gemv_batch_f32(w.data_ptr<float>(), w.stride(0), x.data_ptr<float>(), x.stride(0),
                                 m, k, bias ? b.data_ptr<float>() : nullptr, r0, r1, got.data(),
                                 ldo);
        }
        for (std::int64_t i = 0; i < m; ++i) {
          for (std::int64_t r = 0; r < r1 - r0; ++r) {
            const std::size_t at = static_cast<std::size_t>(i * ldo + r);
            ASSERT_EQ(std::memcmp(&got[at], &one[at], sizeof(float)), 0)
                << "k " << k << " m " << m << " input " << i << " row " << r0 + r << " bias "
                << bias << ": " << got[at] << " vs " << one[at];
          }
        }
      }
    }
  }
}

// As ResultsDoNotDependOnTheThreadCount for batches: claims of weight rows split the rows' blocks
// anywhere.
TEST_P(KernelsTest, GemvBatchDoesNotDependOnTheThreadCount) {
  if (bf16() && !avx512_bf16_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const at::Tensor w = (at::randn({1000, 1536}) / 40).to(dtype());
  const at::Tensor w2 = (at::randn({1003, 1536}) / 40).to(dtype());
  const at::Tensor wd = (at::randn({77, 8960}) / 95).to(dtype());
  const at::Tensor b = at::randn({1000}).to(dtype());
  std::vector<std::pair<at::Tensor, at::Tensor>> inputs;  // [m, 1, 1536], [m, 1, 8960]
  for (const std::int64_t m : {2, 5, 8}) {
    inputs.emplace_back(at::randn({m, 1, 1536}).to(dtype()), at::randn({m, 1, 8960}).to(dtype()));
  }
  auto run = [&] {
    std::vector<at::Tensor> outs;
    for (const auto& [x, xd] : inputs) {
      auto qkv = gemv(x, {{&w, &b}, {&w2, nullptr}});
      outs.push_back(qkv[0]);
      outs.push_back(qkv[1]);
      outs.push_back(gemv(xd, {{&wd, nullptr}})[0]);
      outs.push_back(gemv_silu_mul(x, {&w, &b}, {&w2, nullptr}));
    }
    return outs;
  };
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run();
  at::set_num_threads(3);
  const auto three = run();
  at::set_num_threads(before);
  for (std::size_t i = 0; i < one.size(); ++i) {
    EXPECT_TRUE(at::equal(one[i], three[i])) << "output " << i;
    EXPECT_TRUE(at::isfinite(one[i].to(at::kFloat)).all().item<bool>()) << "output " << i;
  }
}

TEST_P(KernelsTest, ChunkedAttentionMatchesEager) {
  const std::int64_t b = 2, hq = 6, hkv = 2, s = 37, past = 5, t = s + past, d = 16;
  const at::Tensor q = at::randn({b, hq, s, d}).to(dtype());
  const at::Tensor k = at::randn({b, hkv, t, d}).to(dtype()),
                   v = at::randn({b, hkv, t, d}).to(dtype());
  // Causal mask with the second sequence left-padded by 3 of its cached keys.
  at::Tensor mask = at::zeros({b, 1, s, t}).to(dtype());
  const at::Tensor blocked = at::ones({s, t}, at::TensorOptions().dtype(at::kBool)).triu(past + 1);
  mask.masked_fill_(blocked.view({1, 1, s, t}), layers::mask_min(dtype()));
  mask[1].narrow(2, 0, 3).fill_(layers::mask_min(dtype()));
  const double scale = 0.25;
  // transformers eager_attention_forward with repeat_kv.
  const at::Tensor kr = k.repeat_interleave(hq / hkv, 1), vr = v.repeat_interleave(hq / hkv, 1);
  const at::Tensor probs =
      at::softmax(at::matmul(q, kr.transpose(2, 3)) * scale + mask, -1, at::kFloat).to(dtype());
  const at::Tensor expect = at::matmul(probs, vr).transpose(1, 2);
  for (const bool causal : {false, true}) {
    for (const std::int64_t chunk : {0, 1, 8}) {
      const at::Tensor got = layers::attention(q, k, v, scale, mask, causal, nullptr, chunk);
      EXPECT_TRUE(all_close(got, expect, bf16() ? 3e-2 : 1e-5, rtol(),
                            "attention chunk " + std::to_string(chunk)));
    }
  }
  // Without padding the causal path skips the keys after each chunk (same result).
  const at::Tensor causal_only = mask[0].unsqueeze(0).expand({b, 1, s, t});
  const at::Tensor p_causal =
      at::softmax(at::matmul(q, kr.transpose(2, 3)) * scale + causal_only, -1, at::kFloat)
          .to(dtype());
  const at::Tensor e_causal = at::matmul(p_causal, vr).transpose(1, 2);
  for (const std::int64_t chunk : {3, 8, 100}) {
    EXPECT_TRUE(all_close(layers::attention(q, k, v, scale, causal_only, true, nullptr, chunk),
                          e_causal, bf16() ? 3e-2 : 1e-5, rtol(), "causal, truncated keys"));
  }
  at::Tensor p;
  (void)layers::attention(q, k, v, scale, mask, true, &p);
  EXPECT_TRUE(all_close(p, probs, bf16() ? 4e-3 : 1e-6, rtol(), "probabilities"));
  // The ATen path of the same function.
  set_enabled(false);
  const at::Tensor plain = layers::attention(q, k, v, scale, mask, true);
  EXPECT_TRUE(all_close(plain, expect, bf16() ? 3e-2 : 1e-5, rtol(), "attention (ATen path)"));
}

// Attention over a prefix shared by the sequences (two segments of batch 1) plus each
// sequence's own keys equals eager attention over the keys concatenated per sequence, with
// padding in the own keys masked, on the fused path and the ATen path.
TEST_P(KernelsTest, SharedPrefixAttentionMatchesEager) {
  const std::int64_t b = 3, hq = 6, hkv = 2, d = 16, p1 = 29, p2 = 7, own = 11;
  const std::int64_t t = p1 + p2 + own;
  for (const std::int64_t s : {1, 4}) {
    const at::Tensor q = at::randn({b, hq, s, d}).to(dtype());
    const at::Tensor k1 = at::randn({1, hkv, p1, d}).to(dtype()), v1 = at::randn_like(k1);
    const at::Tensor k2 = at::randn({1, hkv, p2, d}).to(dtype()), v2 = at::randn_like(k2);
    const at::Tensor k = at::randn({b, hkv, own, d}).to(dtype()), v = at::randn_like(k);
    at::Tensor mask = at::zeros({b, 1, s, t}).to(dtype());
    const at::Tensor blocked =
        at::ones({s, t}, at::TensorOptions().dtype(at::kBool)).triu(t - s + 1);
    mask.masked_fill_(blocked.view({1, 1, s, t}), layers::mask_min(dtype()));
    // Sequence 1's own keys are padded in two slots (a shorter fork stacked with longer ones).
    mask[1].narrow(2, p1 + p2 + 2, 2).fill_(layers::mask_min(dtype()));
    const double scale = 0.25;
    const at::Tensor kk = at::cat({k1.expand({b, -1, -1, -1}), k2.expand({b, -1, -1, -1}), k}, 2);
    const at::Tensor vv = at::cat({v1.expand({b, -1, -1, -1}), v2.expand({b, -1, -1, -1}), v}, 2);
    const at::Tensor kr = kk.repeat_interleave(hq / hkv, 1), vr = vv.repeat_interleave(hq / hkv, 1);
    const at::Tensor probs =
        at::softmax(at::matmul(q, kr.transpose(2, 3)) * scale + mask, -1, at::kFloat).to(dtype());
    const at::Tensor expect = at::matmul(probs, vr).transpose(1, 2);
    const std::vector<std::pair<at::Tensor, at::Tensor>> shared = {{k1, v1}, {k2, v2}};
    for (const bool fused : {true, false}) {
      set_enabled(fused);
      const at::Tensor got = layers::attention_shared(q, shared, k, v, scale, mask);
      EXPECT_TRUE(all_close(got, expect, bf16() ? 3e-2 : 1e-5, rtol(),
                            std::string(fused ? "fused" : "ATen") + " s=" + std::to_string(s)));
      // Without own keys (a fork before its first append).
      const at::Tensor m0 = mask.narrow(3, 0, p1 + p2).contiguous();
      const at::Tensor p0 =
          at::softmax(at::matmul(q, kr.narrow(2, 0, p1 + p2).transpose(2, 3)) * scale + m0, -1,
                      at::kFloat)
              .to(dtype());
      EXPECT_TRUE(
          all_close(layers::attention_shared(q, shared, at::Tensor(), at::Tensor(), scale, m0),
                    at::matmul(p0, vr.narrow(2, 0, p1 + p2)).transpose(1, 2), bf16() ? 3e-2 : 1e-5,
                    rtol(), "no own keys"));
    }
    set_enabled(true);
  }
}

// The q.k^T micro-kernel works in tiles of 8 query rows x 48 keys: every partial tile (rows 1-8,
// keys short of 48 in any of its three vectors) must match the eager probabilities.
TEST_P(KernelsTest, AttentionScoresCoverEveryTileShape) {
  const std::int64_t d = 80;  // the Qwen2-VL tower's head dim
  for (const std::int64_t s : {1, 5, 8, 23}) {
    for (const std::int64_t t : {1, 17, 37, 47, 48, 107}) {
      const at::Tensor q = at::randn({1, 2, s, d}).to(dtype());
      const at::Tensor k = at::randn({1, 2, t, d}).to(dtype()),
                       v = at::randn({1, 2, t, d}).to(dtype());
      const double scale = 1.0 / std::sqrt(static_cast<double>(d));
      const at::Tensor probs =
          at::softmax(at::matmul(q, k.transpose(2, 3)).to(at::kFloat) * scale, -1).to(dtype());
      at::Tensor p;
      (void)layers::attention(q, k, v, scale, at::Tensor(), false, &p);
      const std::string what = "s " + std::to_string(s) + " t " + std::to_string(t);
      EXPECT_TRUE(all_close(p, probs, bf16() ? 4e-3 : 1e-6, rtol(), "probabilities " + what));
      // And the output without probabilities asked for (no full score matrix).
      const at::Tensor out = layers::attention(q, k, v, scale, at::Tensor(), false);
      EXPECT_TRUE(all_close(out, at::matmul(probs, v).transpose(1, 2), bf16() ? 1e-2 : 1e-5, rtol(),
                            "output " + what));
    }
  }
}

// Work is split by rows (GEMV row ranges are claimed by whichever thread is free): the thread count
// must not change a single bit, and every row must be written.
TEST_P(KernelsTest, ResultsDoNotDependOnTheThreadCount) {
  if (bf16() && !avx512_bf16_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const at::Tensor x = at::randn({1, 1, 1536}).to(dtype());
  const at::Tensor w = (at::randn({1000, 1536}) / 40).to(dtype());
  const at::Tensor w2 = (at::randn({1003, 1536}) / 40).to(dtype());
  const at::Tensor wd = (at::randn({77, 8960}) / 95).to(dtype());
  const at::Tensor xd = at::randn({1, 1, 8960}).to(dtype());
  const at::Tensor rows = at::randn({1, 300, 1536}).to(dtype()),
                   gain = at::randn({1536}).to(dtype());
  const at::Tensor q = at::randn({1, 4, 70, 32}).to(dtype()),
                   k = at::randn({1, 2, 70, 32}).to(dtype()),
                   v = at::randn({1, 2, 70, 32}).to(dtype());
  auto run = [&] {
    auto qkv = gemv(x, {{&w, nullptr}, {&w2, nullptr}});
    return std::vector<at::Tensor>{
        qkv[0],
        qkv[1],
        gemv(xd, {{&wd, nullptr}})[0],
        gemv_silu_mul(x, {&w, nullptr}, {&w2, nullptr}),
        rms_norm(rows, gain, 1e-6),
        layers::attention(q, k, v, 0.2, at::Tensor(), false, nullptr, 16)};
  };
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run();
  at::set_num_threads(3);
  const auto three = run();
  at::set_num_threads(before);
  for (std::size_t i = 0; i < one.size(); ++i) {
    EXPECT_TRUE(at::equal(one[i], three[i])) << "output " << i;
    EXPECT_TRUE(at::isfinite(one[i].to(at::kFloat)).all().item<bool>()) << "output " << i;
  }
  // Claims of more rows than one kernel call takes, and claims across the two matrices.
  const at::Tensor x32 = x.to(at::kFloat);
  EXPECT_TRUE(all_close(three[0], at::linear(x32, w.to(at::kFloat)).to(dtype()), atol(), rtol(),
                        "1st matrix"));
  EXPECT_TRUE(all_close(three[1], at::linear(x32, w2.to(at::kFloat)).to(dtype()), atol(), rtol(),
                        "2nd matrix"));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, KernelsTest, ::testing::Values(at::kFloat, at::kBFloat16),
                         [](const auto& info) {
                           return info.param == at::kFloat ? std::string("f32")
                                                           : std::string("bf16");
                         });

}  // namespace
}  // namespace glimpse::kernels
