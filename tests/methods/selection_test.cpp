// The ranking, packing and layer-scaling rules the token-reduction methods share.
#include "methods/prune/selection.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace glimpse::methods::prune {
namespace {

TEST(Selection, TopIndicesBreakTiesTowardTheLowerIndex) {
  const at::Tensor scores = at::tensor({0.5f, 0.9f, 0.5f, 0.9f, 0.1f, 0.5f});
  EXPECT_TRUE(at::equal(top_indices(scores, 4), at::tensor({1, 3, 0, 2}, at::kLong)));
  EXPECT_EQ(top_indices(scores, 0).numel(), 0);
  EXPECT_EQ(top_indices(scores, 10).numel(), 6);  // clipped to what there is
  // Equal everywhere: the first k.
  EXPECT_TRUE(at::equal(top_indices(at::zeros({5}), 3), at::arange(3, at::kLong)));
}

TEST(Selection, PackKeepLeftPadsShorterSequences) {
  const at::Tensor one = at::tensor({0, 2, 3}, at::kLong);
  EXPECT_TRUE(at::equal(pack_keep({one}), one));
  const at::Tensor packed = pack_keep({one, at::tensor({1, 4}, at::kLong)});
  EXPECT_TRUE(at::equal(packed, at::tensor({0, 2, 3, -1, 1, 4}, at::kLong).view({2, 3})));
}

TEST(Selection, PaperLayersScaleWithPythonRounding) {
  EXPECT_EQ(scale_layer(8, 32), 8);
  EXPECT_EQ(scale_layer(8, 28), 7);  // Qwen2-VL-2B: [8, 16, 24] -> [7, 14, 21]
  EXPECT_EQ(scale_layer(24, 28), 21);
  EXPECT_EQ(scale_layer(2, 28), 2);    // 1.75
  EXPECT_EQ(scale_layer(16, 3), 2);    // 1.5: half to even
  EXPECT_EQ(scale_layer(4, 4), 0);     // 0.5: half to even
  EXPECT_EQ(scale_layer(15, 24), 11);  // 11.25
}

}  // namespace
}  // namespace glimpse::methods::prune
