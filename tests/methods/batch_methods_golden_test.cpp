// Built-in methods on a batch (issue 15): each sequence of a left-padded batch gets what it gets
// alone. FastV ranks each row by its own last row and keeps its own count (rows that keep fewer
// are padded); attention_map lays each medium onto its own sequence's grid.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/generate/generator.h"
#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/prune/fastv.h"
#include "test_util.h"

namespace glimpse::methods {
namespace {

using test::load_case;
using test::row_alone;

struct Outcome {
  model::ForwardOutput out;
  at::Tensor kept;
  std::vector<inspect::MediaMap> maps;
};

Outcome run(model::Model& m, const model::ForwardInputs& in) {
  prune::FastV fastv(2, 0.5);
  inspect::AttentionMap map(inspect::AttentionMapOptions{});
  pipeline::Pipeline p;
  p.attach(fastv);
  p.attach(map);
  model::ForwardOptions o;
  o.hooks = &p;
  Outcome r;
  r.out = m.forward(in, o);
  r.kept = fastv.kept();
  r.maps = map.maps();
  return r;
}

TEST(BatchMethodsGolden, FastVAndAttentionMapGiveEachSequenceWhatItGetsAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const auto in = load_case("tiny-qwen2-vl", "batch_left_pad");
  const std::int64_t image_token = m->config().get_int("image_token_id");
  ASSERT_EQ(in.input_ids.size(0), 2);
  const Outcome batch = run(*m, in);
  // The rows keep different counts: the kept indices are [2, S'] with -1 padding on the left.
  ASSERT_EQ(batch.kept.dim(), 2);
  EXPECT_TRUE(batch.kept.lt(0).any().item<bool>());
  std::int64_t media_seen = 0;
  for (std::int64_t b = 0; b < 2; ++b) {
    const model::ForwardInputs one = row_alone(in, b, image_token);
    const Outcome alone = run(*m, one);
    // The last token's logits (both end at the right edge).
    EXPECT_TRUE(at::allclose(batch.out.logits[b][-1], alone.out.logits[0][-1], 1e-4, 1e-5))
        << "row " << b << " max diff "
        << (batch.out.logits[b][-1] - alone.out.logits[0][-1]).abs().max().item<float>();
    // The same visual tokens kept, as prompt indices of the row.
    const std::int64_t pad = in.input_ids.size(1) - one.input_ids.size(1);
    const at::Tensor kb = batch.kept[b];
    const at::Tensor mine = kb.index_select(0, kb.ge(pad).nonzero().view({-1})) - pad;
    const at::Tensor theirs = alone.kept.dim() == 2 ? alone.kept[0] : alone.kept;
    EXPECT_TRUE(at::equal(mine, theirs)) << "row " << b;
    for (const auto& mm : alone.maps) {
      // The medium of this row in the batch (media are numbered over the batch; one here).
      ASSERT_EQ(batch.maps.size(), alone.maps.size());
      const auto& bm = batch.maps[0];
      EXPECT_EQ(bm.sequence, b);
      EXPECT_TRUE(at::allclose(bm.maps, mm.maps, 1e-4, 1e-6))
          << "max diff " << (bm.maps - mm.maps).abs().max().item<float>();
      ++media_seen;
    }
  }
  EXPECT_EQ(media_seen, 1);
}

TEST(BatchMethodsGolden, FastVGeneratesForEachSequenceWhatItGeneratesAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const auto in = load_case("tiny-qwen2-vl", "batch_left_pad");
  const std::int64_t image_token = m->config().get_int("image_token_id");
  auto generated = [&](const model::ForwardInputs& inputs) {
    prune::FastV fastv(2, 0.5);
    pipeline::Pipeline p;
    p.attach(fastv);
    generate::GenerationConfig g;
    g.max_new_tokens = 6;
    generate::GenerateOptions o;
    o.hooks = &p;
    return generate::generate(*m, inputs, g, o).new_tokens;
  };
  const at::Tensor batch = generated(in);
  for (std::int64_t b = 0; b < 2; ++b) {
    EXPECT_TRUE(at::equal(batch[b], generated(row_alone(in, b, image_token))[0])) << "row " << b;
  }
}

}  // namespace
}  // namespace glimpse::methods
