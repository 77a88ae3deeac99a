// Visual-head scoring (spec pruning_kv.md 1.1 (e) properties 9 and 10) and the score file it
// writes for sparsemm.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "glimpse/methods/kv/visual_heads.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "methods/kv/sparsemm.h"
#include "test_util.h"

namespace glimpse::methods::kv {
namespace {

TEST(VisualHeads, OnlyTheHeadLookingAtTheNamedRegionScores) {
  const std::vector<OcrChunk> chunks{{"apple", {10, 11, 12, 13}}, {"river", {20, 21}}};
  at::Tensor argmax = at::full({3, 4}, 5, at::kLong);  // every head looks at key 5 ...
  argmax[1][2] = 12;                                   // ... but layer 1, head 2 at "apple"
  at::Tensor scores = at::zeros({3, 4}, at::kDouble);
  add_visual_hits(" app", chunks, argmax, scores);
  add_visual_hits("le", chunks, argmax, scores);
  EXPECT_DOUBLE_EQ(scores[1][2].item<double>(), 2 * 0.25);
  EXPECT_DOUBLE_EQ(scores.sum().item<double>(), 0.5);
  // A token in no chunk, in two chunks ("e" is in both), or
  // empty adds nothing.
  const at::Tensor before = scores.clone();
  add_visual_hits("zebra", chunks, argmax, scores);
  add_visual_hits("e", chunks, argmax, scores);
  add_visual_hits("  ", chunks, argmax, scores);
  EXPECT_TRUE(at::equal(scores, before));
  // The other region: the head looking there scores 1 / 2.
  argmax[0][0] = 21;
  add_visual_hits("riv", chunks, argmax, scores);
  EXPECT_DOUBLE_EQ(scores[0][0].item<double>(), 0.5);
}

TEST(VisualHeads, WritesAScoreFileSparseMmReads) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string dir = test::fixtures_dir() + "/tiny-qwen2-vl/model";
  auto m = model::load_model(dir);
  const auto processor = model::Processor::load(dir);
  VisualHeadOptions o;
  o.samples = 2;
  o.max_new_tokens = 3;
  const auto j = nlohmann::json::parse(score_visual_heads(*m, *processor, o));
  ASSERT_EQ(j.size(), 3u * 4u);  // every layer and query head
  for (const auto& [key, value] : j.items()) {
    ASSERT_EQ(value.size(), 2u) << key;
    for (const auto& x : value) EXPECT_GE(x.get<double>(), 0.0) << key;
  }
  const std::string path = ::testing::TempDir() + "heads.json";
  std::ofstream(path) << j.dump();
  const at::Tensor scores = SparseMM::read_scores(path);
  EXPECT_EQ(scores.sizes(), (at::IntArrayRef{3, 4}));
}

}  // namespace
}  // namespace glimpse::methods::kv
