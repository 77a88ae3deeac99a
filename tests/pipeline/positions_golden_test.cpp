// The position policy of a keep (issue 15): PositionPolicy::Keep leaves the kept tokens their
// original positions; PositionPolicy::Compact is glimpse's rule (every kept token, all three
// M-RoPE streams alike, moves down by the number of tokens removed before it, and so do later
// layers and decode steps). On a text-only prompt, dropping tokens at layer 0 with compaction is
// the same as never having them.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"
#include "layers/decoder.h"
#include "test_util.h"

namespace glimpse::pipeline {
namespace {

using model::BlockPre;
using model::PositionPolicy;

struct PreMethod : Method {
  std::function<void(BlockPre&)> pre;
  std::string type() const override { return "pre"; }
  void report(Report&) const override {}
  void on_block_pre(BlockPre& b) override { pre(b); }
};

at::Tensor idx(const std::vector<std::int64_t>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong));
}

model::ForwardInputs load_case(const std::string& model, const std::string& name) {
  auto in = model::read_forward_inputs(test::fixtures_dir() + "/" + model + "/cases/" + name +
                                       ".inputs.safetensors");
  in.input_ids = in.input_ids.to(at::kLong).contiguous();
  return in;
}

// Every index of [0, n) but `drop`.
at::Tensor all_but(std::int64_t n, const std::vector<std::int64_t>& drop) {
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < n; ++i) {
    if (std::find(drop.begin(), drop.end(), i) == drop.end()) keep.push_back(i);
  }
  return idx(keep);
}

// A method that keeps `keep` at layer `layer` of the prefill with `policy`.
PreMethod keeper(std::int64_t layer, at::Tensor keep, PositionPolicy policy) {
  PreMethod m;
  m.pre = [layer, keep, policy](BlockPre& b) {
    if (b.prefill && b.layer == layer) {
      b.keep = keep;
      b.positions = policy;
    }
  };
  return m;
}

class CompactTextGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CompactTextGolden, DroppingTokensAtLayerZeroIsNeverHavingThem) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  auto m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
  const model::ForwardInputs in = load_case(name, "text_only");
  const std::int64_t s = in.input_ids.size(1);
  ASSERT_GT(s, 6);
  const at::Tensor keep = all_but(s, {2, 3, s - 3});

  model::ForwardInputs reduced;
  reduced.input_ids = in.input_ids.index_select(1, keep).contiguous();
  reduced.attention_mask = at::ones_like(reduced.input_ids);
  const model::ForwardOutput want = m->forward(reduced, {});

  PreMethod compact = keeper(0, keep, PositionPolicy::Compact);
  Pipeline p;
  p.attach(compact);
  model::ForwardOptions o;
  o.hooks = &p;
  const model::ForwardOutput got = m->forward(in, o);
  ASSERT_EQ(got.logits.sizes(), want.logits.sizes());
  EXPECT_TRUE(at::allclose(got.logits, want.logits, 1e-5, 1e-5))
      << "max diff " << (got.logits - want.logits).abs().max().item<float>();

  // With the original positions the result differs: the test can tell the policies apart.
  PreMethod kept = keeper(0, keep, PositionPolicy::Keep);
  Pipeline q;
  q.attach(kept);
  o.hooks = &q;
  EXPECT_FALSE(at::allclose(m->forward(in, o).logits, want.logits, 1e-3, 1e-3));

  // Generation decodes on from the compacted positions: the same tokens as the short prompt.
  generate::GenerationConfig g;
  g.max_new_tokens = 6;
  generate::GenerateOptions go;
  const at::Tensor short_tokens = generate::generate(*m, reduced, g, go).new_tokens;
  go.hooks = &p;
  EXPECT_TRUE(at::equal(generate::generate(*m, in, g, go).new_tokens, short_tokens))
      << generate::generate(*m, in, g, go).new_tokens << " vs " << short_tokens;
}

TEST_P(CompactTextGolden, CompactingAKeepOfEveryTokenChangesNothing) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  auto m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
  const model::ForwardInputs in = load_case(name, "text_only");
  const model::ForwardOutput base = m->forward(in, {});
  PreMethod all = keeper(1, at::arange(in.input_ids.size(1), at::kLong), PositionPolicy::Compact);
  Pipeline p;
  p.attach(all);
  model::ForwardOptions o;
  o.hooks = &p;
  EXPECT_TRUE(at::equal(m->forward(in, o).logits, base.logits));
}

// Decode steps: layers before the compacting one see the positions they always had, layers from
// it on see them moved down by the number of tokens removed.
TEST_P(CompactTextGolden, DecodeStepsKeepTheShiftOfTheLayersThatCompacted) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  auto m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
  const model::ForwardInputs in = load_case(name, "text_only");
  const std::int64_t s = in.input_ids.size(1), layer = 1;
  const std::vector<std::int64_t> drop = {1, 4, 5};
  PreMethod compact = keeper(layer, all_but(s, drop), PositionPolicy::Compact);
  std::map<std::int64_t, std::vector<std::int64_t>> seen;  // layer -> decode positions
  PreMethod watch;
  watch.pre = [&](BlockPre& b) {
    if (!b.prefill) {
      const at::Tensor pos = b.layout->positions;  // [P, 1, 1]
      for (std::int64_t p = 1; p < pos.size(0); ++p) EXPECT_TRUE(at::equal(pos[p], pos[0]));
      seen[b.layer].push_back(pos[0][0][0].item<std::int64_t>());
    }
  };
  Pipeline p;
  p.attach(watch);  // first: it sees what the layer gets
  p.attach(compact);
  generate::GenerationConfig g;
  g.max_new_tokens = 4;
  generate::GenerateOptions go;
  go.hooks = &p;
  generate::generate(*m, in, g, go);
  const auto removed = static_cast<std::int64_t>(drop.size());
  ASSERT_EQ(seen[0].size(), 3u);  // the first new token comes from the prefill
  for (std::int64_t step = 0; step < 3; ++step) {
    for (const auto& [l, pos] : seen) {
      const std::int64_t want = s + step - (l >= layer ? removed : 0);
      EXPECT_EQ(pos[static_cast<std::size_t>(step)], want) << "layer " << l << " step " << step;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CompactTextGolden,
                         ::testing::Values("tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-1.5"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-' || c == '.') c = '_';
                           }
                           return n;
                         });

// glimpse's M-RoPE rule on an image prompt: all three streams of a kept token move down by the
// number of tokens removed before it; PositionPolicy::Keep leaves them as they were.
TEST(CompactPositionsGolden, MRopeStreamsMoveDownByTheTokensRemovedBefore) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const model::ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  const std::int64_t s = in.input_ids.size(1), layer = 1;
  const std::int64_t image_token = m->config().get_int("image_token_id");
  const at::Tensor visual = in.input_ids[0].eq(image_token).nonzero().view({-1});
  ASSERT_GT(visual.numel(), 4);
  const std::vector<std::int64_t> drop = {visual[1].item<std::int64_t>(),
                                          visual[2].item<std::int64_t>(),
                                          visual[-1].item<std::int64_t>(), s - 2};
  const at::Tensor keep = all_but(s, drop);
  for (const PositionPolicy policy : {PositionPolicy::Keep, PositionPolicy::Compact}) {
    at::Tensor before, after;
    PreMethod watch;
    watch.pre = [&](BlockPre& b) {
      if (b.layer == layer) before = b.layout->positions.clone();
      if (b.layer == layer + 1) after = b.layout->positions.clone();
    };
    PreMethod k = keeper(layer, keep, policy);
    Pipeline p;
    p.attach(watch);
    p.attach(k);
    model::ForwardOptions o;
    o.hooks = &p;
    m->forward(in, o);
    ASSERT_EQ(before.size(0), 3);
    at::Tensor want = before.index_select(2, keep);
    if (policy == PositionPolicy::Compact) {
      std::vector<std::int64_t> shift;
      for (std::int64_t j = 0; j < keep.numel(); ++j) {
        const std::int64_t k_j = keep[j].item<std::int64_t>();
        shift.push_back(
            std::count_if(drop.begin(), drop.end(), [k_j](std::int64_t d) { return d < k_j; }));
      }
      want = want - idx(shift).view({1, 1, -1});
    }
    EXPECT_TRUE(at::equal(after, want)) << "policy " << static_cast<int>(policy);
  }
}

// The rule on a padded batch with a per-sequence keep: padding is not counted as removed.
TEST(CompactPositions, PaddingIsNotCountedAsRemoved) {
  // Row 0: two padding slots, then tokens 2..5 with positions 0..3; row 1: tokens 0..5.
  const at::Tensor mask = at::tensor({0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, at::kLong).view({2, 6});
  // Row 0 keeps tokens 2, 4, 5 (drops 3), row 1 keeps 0, 2, 3, 5 (drops 1, 4).
  const at::Tensor keep = idx({-1, 2, 4, 5, 0, 2, 3, 5}).view({2, 4});
  model::TokenLayout layout;
  // Already selected; the padded slot holds a copy of slot 0 (a padding position, 1).
  layout.positions = idx({1, 0, 2, 3, 0, 2, 3, 5}).view({1, 2, 4});
  const at::Tensor removed = layers::compact_positions(keep, mask, layout);
  EXPECT_TRUE(at::equal(removed, idx({1, 2})));
  EXPECT_TRUE(at::equal(layout.positions, idx({1, 0, 1, 2, 0, 1, 2, 3}).view({1, 2, 4})));
}

}  // namespace
}  // namespace glimpse::pipeline
