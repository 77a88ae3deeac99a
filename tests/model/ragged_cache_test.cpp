// The ragged (per-head) part of the KV cache (issue 17): keep_heads moves each head's kept
// entries into one buffer of exactly their size, attention over it equals dense attention with the
// evicted keys masked (spec pruning_kv.md 1.1 (e) property 8), and forks share it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "glimpse/core/error.h"
#include "glimpse/model/kv_cache.h"
#include "kernels/ops.h"
#include "layers/cached_attention.h"
#include "layers/modules.h"

namespace glimpse::model {
namespace {

constexpr std::int64_t kHeads = 2, kQueryHeads = 4, kDim = 16;

// Per (sequence, head) kept columns of a prompt of `t`: a different pattern and count per head.
at::Tensor pattern(std::int64_t b, std::int64_t t) {
  std::vector<at::Tensor> rows;
  std::int64_t widest = 0;
  for (std::int64_t s = 0; s < b; ++s) {
    for (std::int64_t h = 0; h < kHeads; ++h) {
      const at::Tensor cols = at::arange(t, at::kLong);
      const at::Tensor keep = cols.remainder(2 + h + s).eq(0).logical_or(cols.ge(t - 3));
      rows.push_back(cols.masked_select(keep));
      widest = std::max(widest, rows.back().numel());
    }
  }
  at::Tensor out = at::full({b * kHeads, widest}, -1, at::kLong);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::int64_t n = rows[i].numel();
    out[static_cast<std::int64_t>(i)].narrow(0, widest - n, n).copy_(rows[i]);
  }
  return out.view({b, kHeads, widest});
}

// softmax(q k^T / sqrt(d)) v per (sequence, KV head) over every key, with the evicted ones
// (columns < t not in `keep`) at -inf, in fp64.
at::Tensor masked_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& keep, std::int64_t t) {
  const std::int64_t b = q.size(0), s = q.size(2), total = k.size(2), rep = kQueryHeads / kHeads;
  at::Tensor out = at::empty({b, s, kQueryHeads, kDim}, at::kDouble);
  for (std::int64_t bi = 0; bi < b; ++bi) {
    for (std::int64_t h = 0; h < kHeads; ++h) {
      at::Tensor allowed = at::ones({total}, at::kBool);
      allowed.narrow(0, 0, t).fill_(false);
      const at::Tensor kept = keep[bi][h].masked_select(keep[bi][h].ge(0));
      allowed.index_fill_(0, kept, true);
      for (std::int64_t r = 0; r < rep; ++r) {
        const std::int64_t hq = h * rep + r;
        at::Tensor sc = at::matmul(q[bi][hq].to(at::kDouble), k[bi][h].to(at::kDouble).t()) /
                        std::sqrt(static_cast<double>(kDim));
        // Causal over the keys after the prompt: query i sees keys up to t + i.
        for (std::int64_t i = 0; i < s; ++i) {
          at::Tensor row = sc[i].masked_fill(allowed.logical_not(), -INFINITY);
          row.narrow(0, total - s + i + 1, s - i - 1).fill_(-INFINITY);
          out[bi][i][hq].copy_(at::matmul(at::softmax(row, 0), v[bi][h].to(at::kDouble)));
        }
      }
    }
  }
  return out;
}

class RaggedCacheTest : public ::testing::TestWithParam<c10::ScalarType> {};

TEST_P(RaggedCacheTest, AttentionEqualsDenseAttentionWithEvictedKeysMasked) {
  const c10::ScalarType dtype = GetParam();
  const double tol = dtype == at::kFloat ? 1e-5 : 2e-2;
  for (const bool kernels : {true, false}) {
    const bool was = kernels::enabled();
    kernels::set_enabled(kernels && was);
    for (const std::int64_t b : {1, 2}) {
      at::manual_seed(7);
      const std::int64_t t = 21, s = 3;
      const at::Tensor k = at::randn({b, kHeads, t + s, kDim}).to(dtype);
      const at::Tensor v = at::randn({b, kHeads, t + s, kDim}).to(dtype);
      DenseKVCache cache(1);
      cache.append(0, k.narrow(2, 0, t), v.narrow(2, 0, t));
      const at::Tensor keep = pattern(b, t);
      cache.keep_heads(0, keep);
      const KVView after = cache.view(0);
      ASSERT_TRUE(after.ragged);
      // Exactly the kept entries are held, nothing of the dense buffer.
      const std::int64_t kept = keep.ge(0).sum().item<std::int64_t>();
      EXPECT_EQ(cache.bytes_held(), 2 * kept * kDim * at::elementSize(dtype));
      EXPECT_EQ(cache.length(0), keep.size(2));
      const at::Tensor lengths = cache.head_lengths(0);
      EXPECT_TRUE(at::equal(lengths, keep.ge(0).sum(2)));
      // Tokens after the compression go to dense own rows behind the ragged part.
      const KVView view = cache.append(0, k.narrow(2, t, s), v.narrow(2, t, s));
      EXPECT_EQ(view.length(), keep.size(2) + s);
      const at::Tensor q = at::randn({b, kQueryHeads, s, kDim}).to(dtype);
      // The causal mask over the dense columns; the ragged part is never masked.
      const std::int64_t cols = view.length();
      at::Tensor mask = at::zeros({b, 1, s, cols}, dtype);
      for (std::int64_t i = 0; i < s; ++i)
        mask.select(2, i).narrow(-1, cols - s + i + 1, s - i - 1).fill_(-1e30);
      const at::Tensor got =
          layers::attention_ragged(q, view, 1.0 / std::sqrt(static_cast<double>(kDim)), mask);
      const at::Tensor want = masked_reference(q, k, v, keep, t);
      EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, tol, tol))
          << "batch " << b << " kernels " << kernels << " max diff "
          << (got.to(at::kDouble) - want).abs().max().item<double>();
    }
    kernels::set_enabled(was);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RaggedCacheTest, ::testing::Values(at::kFloat, at::kBFloat16));

TEST(RaggedCache, KeepsTrackOfPromptSlotsAcrossKeeps) {
  const at::Tensor k = at::randn({1, kHeads, 10, kDim}), v = at::randn({1, kHeads, 10, kDim});
  DenseKVCache cache(1);
  cache.append(0, k, v);
  cache.keep_heads(0, at::tensor({-1, 1, 4, 9, 2, 3, 5, 7}, at::kLong).view({1, 2, 4}));
  auto r = cache.view(0).ragged;
  EXPECT_TRUE(at::equal(r->slots, at::tensor({1, 4, 9, 2, 3, 5, 7}, at::kLong)));
  EXPECT_TRUE(at::equal(r->keys.narrow(0, 0, 3), k[0][0].index_select(0, at::tensor({1, 4, 9}))));
  // Two more tokens, then a second keep: column 4 is the first new token (slot 10).
  cache.append(0, at::randn({1, kHeads, 2, kDim}), at::randn({1, kHeads, 2, kDim}));
  cache.keep_heads(0, at::tensor({0, 2, 4, 1, 2, 5}, at::kLong).view({1, 2, 3}));
  r = cache.view(0).ragged;
  EXPECT_TRUE(at::equal(r->slots, at::tensor({1, 9, 10, 3, 5, 11}, at::kLong)));
  EXPECT_EQ(r->covered, 12);
}

TEST(RaggedCache, ForksShareTheRaggedPart) {
  DenseKVCache cache(1);
  cache.append(0, at::randn({1, kHeads, 12, kDim}), at::randn({1, kHeads, 12, kDim}));
  cache.keep_heads(0, pattern(1, 12));
  const std::int64_t held = cache.bytes_held();
  auto forks = cache.fork(3);
  std::vector<const KVCache*> all{&cache};
  for (const auto& f : forks) all.push_back(f.get());
  EXPECT_EQ(kv_bytes_held(all), held);  // held once, however many read it
  EXPECT_EQ(forks[0]->view(0).ragged.get(), cache.view(0).ragged.get());
  // A fork's own tokens go behind the shared ragged part.
  forks[1]->append(0, at::randn({1, kHeads, 1, kDim}), at::randn({1, kHeads, 1, kDim}));
  EXPECT_EQ(forks[1]->length(0), cache.length(0) + 1);
  EXPECT_EQ(cache.view(0).keys.defined(), false);
}

TEST(RaggedCache, BadKeepsAreInputErrors) {
  DenseKVCache cache(1);
  cache.append(0, at::randn({1, kHeads, 6, kDim}), at::randn({1, kHeads, 6, kDim}));
  EXPECT_THROW(cache.keep_heads(0, at::tensor({0, 1, 2}, at::kLong)), InputError);  // not 3-D
  EXPECT_THROW(cache.keep_heads(0, at::tensor({2, 1, 0, 1}, at::kLong).view({1, 2, 2})),
               InputError);  // decreasing
  EXPECT_THROW(cache.keep_heads(0, at::tensor({0, 6, 0, 1}, at::kLong).view({1, 2, 2})),
               InputError);  // past the end
  EXPECT_THROW(cache.keep_heads(0, at::tensor({0, -1, 0, 1}, at::kLong).view({1, 2, 2})),
               InputError);  // padding after a column
  cache.keep_heads(0, at::tensor({-1, 0, 1, 2, 3, 4}, at::kLong).view({1, 2, 3}));
  // Head 0 holds 2 entries: column 2 is a hole.
  EXPECT_THROW(cache.keep_heads(0, at::tensor({0, 2, 0, 1}, at::kLong).view({1, 2, 2})),
               InputError);
  EXPECT_THROW(cache.keep(0, at::tensor({0}, at::kLong)), UnsupportedError);
  EXPECT_THROW(cache.get(0), UnsupportedError);
}

}  // namespace
}  // namespace glimpse::model
