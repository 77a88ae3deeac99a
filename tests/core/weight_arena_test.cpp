#include "core/weight_arena.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>

namespace glimpse::core {
namespace {

constexpr std::size_t kMB = std::size_t{1} << 20;

TEST(WeightArenaTest, CopiesConvertAndAlign) {
  WeightArena arena(4 * kMB);
  const at::Tensor a = at::randn({3, 5});
  const at::Tensor b = at::randn({7}).to(at::kBFloat16);
  const at::Tensor a16 = arena.copy(a, at::kBFloat16);
  const at::Tensor b32 = arena.copy(b, at::kFloat);
  const at::Tensor strided = arena.copy(a.t(), at::kFloat);
  EXPECT_TRUE(at::equal(a16, a.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(b32, b.to(at::kFloat)));
  EXPECT_TRUE(at::equal(strided, a.t()));
  EXPECT_TRUE(strided.is_contiguous());
  for (const auto& t : {a16, b32, strided}) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 64, 0u);
  }
  // Three small tensors share the first chunk.
  EXPECT_EQ(arena.mapped_bytes(), 4 * kMB);
  EXPECT_EQ(arena.copy(at::empty({0, 4}), at::kFloat).numel(), 0);
}

TEST(WeightArenaTest, LargeTensorsGetTheirOwnMappingAndChunksDoNotOverlap) {
  WeightArena arena(4 * kMB);
  // 3 MB: more than half a chunk, mapped alone and rounded to 2 MB pages.
  const at::Tensor big = arena.copy(at::ones({3 * 1024 * 1024 / 4}), at::kFloat);
  EXPECT_EQ(arena.mapped_bytes(), 4 * kMB);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big.data_ptr()) % (2 * kMB), 0u);
  // 1.5 MB tensors: two fit a 4 MB chunk, the third opens a new one.
  std::vector<at::Tensor> parts;
  for (int i = 0; i < 3; ++i) {
    parts.push_back(arena.copy(at::full({1536 * 1024 / 4}, static_cast<float>(i)), at::kFloat));
  }
  EXPECT_EQ(arena.mapped_bytes(), 12 * kMB);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(at::equal(parts[i], at::full({1536 * 1024 / 4}, static_cast<float>(i)))) << i;
  }
  EXPECT_TRUE(at::equal(big, at::ones({3 * 1024 * 1024 / 4})));
}

TEST(WeightArenaTest, TensorsOutliveTheArena) {
  at::Tensor kept;
  {
    WeightArena arena(2 * kMB);
    kept = arena.copy(at::arange(1000, at::kFloat), at::kFloat);
  }
  EXPECT_TRUE(at::equal(kept, at::arange(1000, at::kFloat)));
}

}  // namespace
}  // namespace glimpse::core
