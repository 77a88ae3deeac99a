// The vision-tower sites (issue 15) on the tiny fixture models: identity methods change nothing,
// vision.blocks.{i}.pre/post see (and replace) the tower's hidden states, vision probes give the
// attention each patch receives, and the keeps of vision.features and vision.out drop placeholder
// tokens with their layout rows and positions, as a keep at blocks.0.pre of the same tokens does.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"
#include "models/llava/modeling.h"
#include "models/qwen2_vl/modeling.h"
#include "test_util.h"

namespace glimpse::pipeline {
namespace {

using model::ForwardInputs;
using model::ForwardOutput;
using model::PositionPolicy;
using model::VisionProbeRequest;

struct VisionMethod : Method {
  std::function<std::optional<VisionProbeRequest>(std::int64_t)> want;
  std::function<void(const model::VisionAttentionProbe&)> got;
  std::function<void(model::VisionBlock&)> block;
  std::function<void(model::VisionFeatures&)> features;
  std::function<void(model::VisionOut&)> out;
  std::function<void(model::BlockPre&)> pre;

  std::string type() const override { return "vision"; }
  void report(Report&) const override {}
  std::optional<VisionProbeRequest> vision_probe(std::int64_t layer) override {
    return want ? want(layer) : std::nullopt;
  }
  void on_vision_attention_probe(const model::VisionAttentionProbe& p) override {
    if (got) got(p);
  }
  void on_vision_block(model::VisionBlock& b) override {
    if (block) block(b);
  }
  void on_vision_features(model::VisionFeatures& f) override {
    if (features) features(f);
  }
  void on_vision_out(model::VisionOut& v) override {
    if (out) out(v);
  }
  void on_block_pre(model::BlockPre& b) override {
    if (pre) pre(b);
  }
};

std::unique_ptr<model::Model> load(const std::string& name) {
  return model::load_model(test::fixtures_dir() + "/" + name + "/model");
}

ForwardInputs load_case(const std::string& model, const std::string& name) {
  auto in = model::read_forward_inputs(test::fixtures_dir() + "/" + model + "/cases/" + name +
                                       ".inputs.safetensors");
  in.input_ids = in.input_ids.to(at::kLong).contiguous();
  return in;
}

ForwardOutput run(model::Model& m, const ForwardInputs& in, Method* method) {
  Pipeline p;
  if (method != nullptr) p.attach(*method);
  model::ForwardOptions o;
  o.hooks = &p;
  return m.forward(in, o);
}

std::int64_t placeholder(const model::Model& m, model::Modality kind) {
  return m.config().get_int(kind == model::Modality::Video ? "video_token_id" : "image_token_id",
                            m.config().get_int("image_token_index", 32000));
}

class VisionSitesGolden : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(VisionSitesGolden, IdentityMethodsChangeNothing) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [name, case_name] = GetParam();
  auto m = load(name);
  const ForwardInputs in = load_case(name, case_name);
  const ForwardOutput base = m->forward(in, {});
  VisionMethod id;
  std::int64_t blocks = 0, probes = 0, features = 0, outs = 0;
  const bool qwen = name.find("qwen") != std::string::npos;
  id.want = [&](std::int64_t) {
    return VisionProbeRequest{
        qwen ? VisionProbeRequest::Query::Mean : VisionProbeRequest::Query::Cls, true};
  };
  id.got = [&](const model::VisionAttentionProbe&) { ++probes; };
  id.block = [&](model::VisionBlock& b) {
    b.hidden = b.hidden.clone();
    ++blocks;
  };
  id.features = [&](model::VisionFeatures& f) {
    ++features;
    EXPECT_FALSE(f.features.empty());
  };
  id.out = [&](model::VisionOut&) { ++outs; };
  const ForwardOutput out = run(*m, in, &id);
  EXPECT_TRUE(at::equal(out.logits, base.logits));
  EXPECT_GT(blocks, 0);
  EXPECT_EQ(blocks % 2, 0);  // pre and post
  EXPECT_EQ(probes * 2, blocks);
  EXPECT_EQ(features, 1);
  EXPECT_EQ(outs, 1);

  // Features given back as a copy take the merger/projector on the kept rows: the same numbers.
  VisionMethod copy;
  copy.features = [](model::VisionFeatures& f) {
    for (auto& t : f.features) t = t.clone();
  };
  EXPECT_TRUE(at::allclose(run(*m, in, &copy).logits, base.logits, 1e-5, 1e-5));
}

// A keep at vision.features: the merger and projector work per token, so the LLM receives the
// kept rows of the full features; and the sequence loses the others exactly as a keep at
// blocks.0.pre of the same tokens makes it, under either position policy.
TEST_P(VisionSitesGolden, FeatureAndOutKeepsDropTokensLikeAKeepAtLayerZero) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [name, case_name] = GetParam();
  auto m = load(name);
  const ForwardInputs in = load_case(name, case_name);
  at::Tensor full;  // image embeds at vision.out without keeps
  VisionMethod watch;
  watch.out = [&](model::VisionOut& v) { full = v.image_embeds; };
  run(*m, in, &watch);
  ASSERT_TRUE(full.defined());
  const std::int64_t image_token = placeholder(*m, model::Modality::Image);
  // Image tokens in prompt order: the flattened slots and per medium.
  const at::Tensor slots = in.input_ids.eq(image_token).reshape({-1}).nonzero().view({-1});
  ASSERT_EQ(slots.numel(), full.size(0));

  for (const PositionPolicy policy : {PositionPolicy::Keep, PositionPolicy::Compact}) {
    for (const bool at_features : {true, false}) {
      // Every third token of the first medium (its first included), all of the others.
      std::vector<std::int64_t> first_kept;
      std::int64_t first_tokens = 0;
      at::Tensor seen;
      VisionMethod keep;
      keep.features = [&](model::VisionFeatures& f) {
        if (!at_features) return;
        first_tokens = f.features[0].size(0) / f.group;
        std::vector<std::int64_t> k;
        for (std::int64_t t = 0; t < first_tokens; t += 3) k.push_back(t);
        first_kept = k;
        f.keep.assign(f.features.size(), at::Tensor());
        f.keep[0] = at::tensor(k, at::kLong);
        f.positions = policy;
      };
      keep.out = [&](model::VisionOut& v) {
        if (!at_features) {
          // The first medium is the first image tokens in order.
          first_tokens = v.layout->media_index.eq(0)
                             .logical_and(v.layout->modality.eq(
                                 static_cast<std::int8_t>(model::Modality::Image)))
                             .sum()
                             .item<std::int64_t>();
          std::vector<std::int64_t> k;
          for (std::int64_t t = 0; t < v.image_embeds.size(0); ++t) {
            if (t >= first_tokens || t % 3 == 0) k.push_back(t);
          }
          first_kept.clear();
          for (std::int64_t t = 0; t < first_tokens; t += 3) first_kept.push_back(t);
          v.image_keep = at::tensor(k, at::kLong);
          v.positions = policy;
        } else {
          seen = v.image_embeds;
        }
      };
      const ForwardOutput got = run(*m, in, &keep);
      // The kept image rows (global over the image tokens).
      std::vector<std::int64_t> rows = first_kept;
      for (std::int64_t t = first_tokens; t < full.size(0); ++t) rows.push_back(t);
      const at::Tensor kept_rows = at::tensor(rows, at::kLong);
      if (at_features) {
        ASSERT_TRUE(seen.defined());
        EXPECT_TRUE(at::allclose(seen, full.index_select(0, kept_rows), 1e-5, 1e-5))
            << name << ": merged/projected rows of the kept features";
      }
      // The same tokens dropped at blocks.0.pre.
      at::Tensor dropped = at::ones({full.size(0)}, at::kBool);
      dropped.index_fill_(0, kept_rows, false);
      at::Tensor keep_seq = at::ones({in.input_ids.numel()}, at::kBool);
      keep_seq.index_fill_(0, slots.masked_select(dropped), false);
      keep_seq = keep_seq.view(in.input_ids.sizes());
      ASSERT_EQ(in.input_ids.size(0), 1);
      const at::Tensor seq_keep = keep_seq[0].nonzero().view({-1});
      VisionMethod at_zero;
      at_zero.pre = [&](model::BlockPre& b) {
        if (b.layer != 0) return;
        b.keep = seq_keep;
        b.positions = policy;
      };
      const ForwardOutput want = run(*m, in, &at_zero);
      ASSERT_EQ(got.logits.sizes(), want.logits.sizes());
      EXPECT_TRUE(at::allclose(got.logits, want.logits, 1e-4, 1e-5))
          << name << " policy " << static_cast<int>(policy) << " features " << at_features
          << " max diff " << (got.logits - want.logits).abs().max().item<float>();
      EXPECT_TRUE(at::equal(got.layout.original_index, want.layout.original_index));
      EXPECT_TRUE(at::equal(got.layout.positions, want.layout.positions));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, VisionSitesGolden,
                         ::testing::Values(std::make_pair("tiny-qwen2-vl", "two_images"),
                                           std::make_pair("tiny-qwen2.5-vl", "image_a"),
                                           std::make_pair("tiny-llava-1.5", "two_images")));

TEST(VisionBlocksGolden, QwenBlocksSeeTheTowerTraceAndTheirReplacementReachesTheFeatures) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-qwen2.5-vl"}) {
    auto m = load(name);
    auto& qwen = dynamic_cast<models::qwen2_vl::Qwen2VLForConditionalGeneration&>(*m);
    const ForwardInputs in = load_case(name, "image_a");
    models::qwen2_vl::VisionTrace trace;
    qwen.encode_vision(in.pixel_values, in.image_grid_thw, &trace);
    const auto depth = static_cast<std::int64_t>(trace.blocks.size());
    std::vector<at::Tensor> posts;
    at::Tensor features, order;
    VisionMethod twice;
    twice.block = [&](model::VisionBlock& b) {
      if (!b.post) return;
      posts.push_back(b.hidden);
      if (b.layer == depth - 1) {
        b.hidden = b.hidden * 2;
        order = b.window_order;
      }
    };
    twice.features = [&](model::VisionFeatures& f) { features = f.features[0]; };
    run(*m, in, &twice);
    ASSERT_EQ(static_cast<std::int64_t>(posts.size()), depth);
    for (std::int64_t i = 0; i < depth; ++i) {
      EXPECT_TRUE(at::equal(posts[i], trace.blocks[i])) << name << " block " << i;
    }
    // The features are the doubled last block in merge-block order.
    at::Tensor want = trace.blocks.back() * 2;
    if (order.defined()) {
      const std::int64_t unit = want.size(0) / order.numel();
      want = want.view({order.numel(), unit, -1})
                 .index_select(0, at::argsort(order))
                 .reshape(want.sizes());
    }
    ASSERT_TRUE(features.defined());
    EXPECT_TRUE(at::equal(features, want)) << name;
  }
}

TEST(VisionBlocksGolden, ClipBlocksAndProbesMatchTheEagerTower) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-llava-1.5");
  auto& llava = dynamic_cast<models::llava::LlavaForConditionalGeneration&>(*m);
  const ForwardInputs in = load_case("tiny-llava-1.5", "two_images");
  const auto eager = llava.image_features(in.pixel_values, /*output_attentions=*/true);
  std::vector<at::Tensor> posts;
  std::vector<model::VisionAttentionProbe> cls, mean;
  at::Tensor embeds;
  VisionMethod watch;
  watch.block = [&](model::VisionBlock& b) {
    if (b.post) posts.push_back(b.hidden);
  };
  std::int64_t asked = 0;
  watch.want = [&](std::int64_t) {
    ++asked;
    return VisionProbeRequest{
        asked % 2 ? VisionProbeRequest::Query::Cls : VisionProbeRequest::Query::Mean, false};
  };
  watch.got = [&](const model::VisionAttentionProbe& p) {
    (p.request.query == VisionProbeRequest::Query::Cls ? cls : mean).push_back(p);
  };
  run(*m, in, &watch);
  ASSERT_FALSE(posts.empty());
  for (std::size_t i = 0; i < posts.size(); ++i) {
    EXPECT_TRUE(at::equal(posts[i], eager.vision.hidden_states[i + 1])) << "block " << i;
  }
  const std::int64_t images = in.pixel_values.size(0);
  auto check = [&](const model::VisionAttentionProbe& p) {
    const at::Tensor a = eager.vision.attentions[p.layer].to(at::kFloat);  // [n, heads, S, S]
    const std::int64_t patches = a.size(-1) - 1;
    ASSERT_EQ(static_cast<std::int64_t>(p.attention.size()), images);
    for (std::int64_t i = 0; i < images; ++i) {
      const at::Tensor want = p.request.query == VisionProbeRequest::Query::Cls
                                  ? a[i].select(1, 0).narrow(1, 1, patches)
                                  : a[i].narrow(1, 1, patches).narrow(2, 1, patches).mean(1);
      EXPECT_TRUE(at::allclose(p.attention[i], want, 1e-5, 1e-6)) << "layer " << p.layer;
    }
  };
  ASSERT_FALSE(cls.empty());
  ASSERT_FALSE(mean.empty());
  for (const auto& p : cls) check(p);
  for (const auto& p : mean) check(p);

  // A replacement at the selected layer's block reaches the projector.
  const std::int64_t selected = static_cast<std::int64_t>(posts.size()) - 1;  // runs up to it
  VisionMethod twice;
  twice.block = [&](model::VisionBlock& b) {
    if (b.post && b.layer == selected) b.hidden = b.hidden * 2;
  };
  twice.out = [&](model::VisionOut& v) { embeds = v.image_embeds; };
  run(*m, in, &twice);
  const at::Tensor h = eager.vision.hidden_states[selected + 1] * 2;
  const at::Tensor want = llava.project(h.narrow(1, 1, h.size(1) - 1));
  EXPECT_TRUE(at::allclose(embeds, want.reshape({-1, want.size(-1)}), 1e-5, 1e-5));
}

TEST(VisionProbesGolden, QwenMeanAttentionSumsToOnePerAttentionBlock) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const auto& [name, case_name] :
       {std::make_pair("tiny-qwen2-vl", "two_images"), std::make_pair("tiny-qwen2-vl", "video"),
        std::make_pair("tiny-qwen2.5-vl", "image_a")}) {
    auto m = load(name);
    const ForwardInputs in = load_case(name, case_name);
    std::vector<model::VisionAttentionProbe> heads, mean;
    VisionMethod a, b;
    a.want = [](std::int64_t) {
      return VisionProbeRequest{VisionProbeRequest::Query::Mean, false};
    };
    a.got = [&](const model::VisionAttentionProbe& p) { heads.push_back(p); };
    b.want = [](std::int64_t) { return VisionProbeRequest{VisionProbeRequest::Query::Mean, true}; };
    b.got = [&](const model::VisionAttentionProbe& p) { mean.push_back(p); };
    Pipeline p;
    p.attach(a);
    p.attach(b);
    model::ForwardOptions o;
    o.hooks = &p;
    m->forward(in, o);
    ASSERT_FALSE(heads.empty());
    ASSERT_EQ(heads.size(), mean.size());
    const at::Tensor grid =
        (case_name == std::string("video") ? in.video_grid_thw : in.image_grid_thw).to(at::kLong);
    for (std::size_t i = 0; i < heads.size(); ++i) {
      ASSERT_EQ(static_cast<std::int64_t>(heads[i].attention.size()), grid.size(0));
      for (std::int64_t j = 0; j < grid.size(0); ++j) {
        const at::Tensor h = heads[i].attention[j];
        ASSERT_EQ(h.size(1), grid[j].prod().item<std::int64_t>());
        // Each attention block (an image, a frame pair, a window) gives one unit of attention per
        // head; every block of a full-attention layer of an image is the whole image.
        const at::Tensor total = h.sum(1);
        EXPECT_TRUE(at::allclose(total, total[0].expand_as(total), 1e-4)) << name << " " << i;
        EXPECT_GE(total[0].item<double>(), 1.0 - 1e-4);
        if (case_name == std::string("two_images") || case_name == std::string("video")) {
          // Qwen2-VL attends over each image (or frame) whole: blocks = frames.
          EXPECT_NEAR(total[0].item<double>(), grid[j][0].item<double>(), 1e-4);
        }
        EXPECT_TRUE(at::allclose(mean[i].attention[j], h.mean(0, true), 1e-6, 1e-7));
        EXPECT_TRUE(at::all(h.ge(0)).item<bool>());
      }
    }
  }
  // Qwen's tower has no CLS token.
  auto m = load("tiny-qwen2-vl");
  VisionMethod cls;
  cls.want = [](std::int64_t) { return VisionProbeRequest{}; };
  EXPECT_THROW(run(*m, load_case("tiny-qwen2-vl", "image_a"), &cls), UnsupportedError);
}

// LLaVA with compaction: dropping image tokens at vision.out is a prompt without them, given the
// kept features as image_embeds, in the forward pass and in generation.
TEST(VisionKeepGolden, LlavaCompactedVisionKeepIsAShorterPrompt) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-llava-1.5");
  const ForwardInputs in = load_case("tiny-llava-1.5", "image_a");
  const std::int64_t image_token = placeholder(*m, model::Modality::Image);
  at::Tensor kept_embeds;
  std::vector<std::int64_t> keep;
  VisionMethod drop;
  drop.out = [&](model::VisionOut& v) {
    keep.clear();
    for (std::int64_t t = 0; t < v.image_embeds.size(0); ++t) {
      if (t % 4 != 1) keep.push_back(t);
    }
    v.image_keep = at::tensor(keep, at::kLong);
    v.positions = PositionPolicy::Compact;
    kept_embeds = v.image_embeds.index_select(0, v.image_keep);
  };
  const ForwardOutput got = run(*m, in, &drop);
  // The prompt without the dropped image tokens.
  const at::Tensor ids = in.input_ids[0];
  std::vector<std::int64_t> short_ids;
  std::int64_t k = 0;
  std::size_t next = 0;
  for (std::int64_t j = 0; j < ids.numel(); ++j) {
    const std::int64_t id = ids[j].item<std::int64_t>();
    if (id == image_token) {
      const bool kept = next < keep.size() && keep[next] == k;
      ++k;
      if (!kept) continue;
      ++next;
    }
    short_ids.push_back(id);
  }
  ForwardInputs shorter;
  shorter.input_ids = at::tensor(short_ids, at::kLong).view({1, -1});
  shorter.attention_mask = at::ones_like(shorter.input_ids);
  shorter.image_embeds = kept_embeds;
  const ForwardOutput want = m->forward(shorter, {});
  ASSERT_EQ(got.logits.sizes(), want.logits.sizes());
  EXPECT_TRUE(at::allclose(got.logits, want.logits, 1e-5, 1e-5));

  generate::GenerationConfig g;
  g.max_new_tokens = 5;
  generate::GenerateOptions plain, hooked;
  Pipeline p;
  p.attach(drop);
  hooked.hooks = &p;
  EXPECT_TRUE(at::equal(generate::generate(*m, in, g, hooked).new_tokens,
                        generate::generate(*m, shorter, g, plain).new_tokens));
}

// A vision keep on a left-padded batch: the sequence that loses tokens is padded further, and each
// sequence gets what it gets alone with the same keep.
TEST(VisionKeepGolden, ABatchKeepsEachSequencesOwnTokens) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "batch_left_pad");
  ASSERT_EQ(in.input_ids.size(0), 2);
  VisionMethod drop;
  drop.out = [](model::VisionOut& v) {
    v.image_keep = at::arange(0, v.image_embeds.size(0), 2, at::kLong);
  };
  const ForwardOutput batch = run(*m, in, &drop);
  const std::int64_t image_token = placeholder(*m, model::Modality::Image);
  for (std::int64_t b = 0; b < 2; ++b) {
    ForwardInputs one;
    const at::Tensor real = in.attention_mask[b].nonzero().view({-1});
    one.input_ids = in.input_ids[b].index_select(0, real).unsqueeze(0);
    one.attention_mask = at::ones_like(one.input_ids);
    if (one.input_ids.eq(image_token).any().item<bool>()) {
      one.pixel_values = in.pixel_values;
      one.image_grid_thw = in.image_grid_thw;
    }
    const ForwardOutput alone = run(*m, one, &drop);
    EXPECT_TRUE(at::allclose(batch.logits[b][-1], alone.logits[0][-1], 1e-4, 1e-5)) << "row " << b;
  }
}

}  // namespace
}  // namespace glimpse::pipeline
