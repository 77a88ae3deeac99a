// PyramidDrop's testable properties (../shared/specs/pruning_kv.md section 2.2 (e)) on the tiny
// LLaVA and Qwen2-VL fixtures, with the stage ranking restated from the official
// pdrop_rank_drop on LLaVA (layer l's norm, q/k projections and RoPE on the sequence entering it).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/prune/pdrop.h"
#include "test_util.h"

namespace glimpse::methods::prune {
namespace {

using test::load_case;

struct PdropRun {
  model::ForwardOutput out;
  std::vector<at::Tensor> kept;
  nlohmann::json report;
};

PdropRun run_pdrop(model::Model& m, const model::ForwardInputs& in, const std::string& params,
                   bool attentions = false) {
  auto p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "pdrop")" + (params.empty() ? "" : ", " + params) + "}]}", "test");
  model::ForwardOptions o;
  o.output_hidden_states = true;
  o.output_attentions = attentions;
  o.hooks = &p;
  PdropRun r;
  r.out = m.forward(in, o);
  r.kept = static_cast<const PyramidDrop&>(*p.methods()[0]).kept();
  r.report = nlohmann::json::parse(p.report().to_json()).at("methods")[0];
  return r;
}

// The official ranking restated for a LLaMA decoder (LLaVA): RMSNorm with layer l's input norm,
// q/k projections, 1-D RoPE at positions 0..S-1, the last row's softmax in fp32, head mean.
at::Tensor llama_stage_scores(const model::Model& m, const at::Tensor& x, std::int64_t layer) {
  const std::string p = "language_model.model.layers." + std::to_string(layer) + ".";
  const auto text = m.config().section("text_config");
  const std::int64_t heads = text.get_int("num_attention_heads");
  const std::int64_t kv_heads = text.get_int("num_key_value_heads");
  const std::int64_t d = text.get_int("head_dim");
  const double eps = text.get_float("rms_norm_eps"), theta = text.get_float("rope_theta");
  const at::Tensor h0 = x[0].to(at::kFloat);
  const at::Tensor h = h0 * at::rsqrt(h0.pow(2).mean(-1, true) + eps) *
                       m.weight(p + "input_layernorm.weight").to(at::kFloat);
  const std::int64_t s = h.size(0);
  at::Tensor q = at::matmul(h, m.weight(p + "self_attn.q_proj.weight").to(at::kFloat).t());
  at::Tensor k = at::matmul(h, m.weight(p + "self_attn.k_proj.weight").to(at::kFloat).t());
  q = q.view({s, heads, d}).transpose(0, 1);
  k = k.view({s, kv_heads, d}).transpose(0, 1).repeat_interleave(heads / kv_heads, 0);
  const at::Tensor inv = 1.0 / at::pow(theta, at::arange(0, d, 2, at::kDouble) / d);
  const at::Tensor ang = at::outer(at::arange(s, at::kDouble), inv);
  const at::Tensor cos = at::cat({ang, ang}, -1).cos().to(at::kFloat);
  const at::Tensor sin = at::cat({ang, ang}, -1).sin().to(at::kFloat);
  auto rotate = [&](const at::Tensor& t) {
    const at::Tensor half = at::cat({-t.narrow(-1, d / 2, d / 2), t.narrow(-1, 0, d / 2)}, -1);
    return t * cos + half * sin;
  };
  q = rotate(q);
  k = rotate(k);
  const at::Tensor row = at::matmul(q.narrow(1, s - 1, 1), k.transpose(1, 2)) / std::sqrt(d);
  return at::softmax(row, -1).view({heads, s}).mean(0);  // the last row sees every key
}

// The kept visual indices (into the sequence entering the stage) as official pdrop_rank_drop
// takes them: the top int(N0 * ratio) of the scores over the visual tokens, sorted.
at::Tensor official_keep(const at::Tensor& scores, const model::TokenLayout& layout,
                         std::int64_t n0, double keep_ratio) {
  const at::Tensor visual = layout.visual_indices(0);
  const auto n = static_cast<std::int64_t>(static_cast<double>(n0) * keep_ratio);
  const at::Tensor top = std::get<1>(at::topk(scores.index_select(0, visual), n));
  at::Tensor mask = layout.modality[0].eq(0);
  mask.index_fill_(0, visual.index_select(0, top), true);
  return mask.nonzero().view({-1});
}

TEST(PyramidDropGolden, ZeroRatioReproducesTheBaselineExactly) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    auto m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
    const auto in = load_case(name, "two_images");
    const at::Tensor base = m->forward(in, {}).logits;
    const PdropRun r = run_pdrop(*m, in, R"("ratio": 0)");
    EXPECT_TRUE(at::equal(r.out.logits, base)) << name;
    EXPECT_TRUE(r.kept.empty());
    EXPECT_EQ(r.report.at("applied"), 0);
    EXPECT_EQ(r.report.at("visual_tokens_after"), r.report.at("visual_tokens_before"));
    generate::GenerationConfig g;
    g.max_new_tokens = 4;
    auto zero =
        pipeline::Pipeline::from_json(R"({"methods": [{"type": "pdrop", "ratio": 0}]})", "t");
    generate::GenerateOptions o;
    o.hooks = &zero;
    EXPECT_TRUE(at::equal(generate::generate(*m, in, g, o).new_tokens,
                          generate::generate(*m, in, g).new_tokens))
        << name;
  }
}

TEST(PyramidDropGolden, LlavaStagesKeepTheOfficialSelectionWithRenumberedPositions) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-llava-1.5/model");
  const auto in = load_case("tiny-llava-1.5", "two_images");
  model::ForwardOptions o;
  o.output_hidden_states = true;
  const auto base = m->forward(in, o);
  const std::int64_t n0 = base.layout.visual_indices(0).numel();
  ASSERT_GT(n0, 8);
  // Defaults on a 3-layer decoder: [8, 16, 24] scale to [1, 2] (deduplicated), lambda 0.5.
  const PdropRun r = run_pdrop(*m, in, "");
  EXPECT_EQ(r.report.at("layers"), nlohmann::json({1, 2}));
  EXPECT_EQ(r.report.at("keep_ratios"), nlohmann::json({0.5, 0.25}));
  ASSERT_EQ(r.kept.size(), 2u);

  // Stage 1: ranked with layer 1's weights on the baseline's input of layer 1.
  const at::Tensor keep1 =
      official_keep(llama_stage_scores(*m, base.hidden_states[1], 1), base.layout, n0, 0.5);
  EXPECT_TRUE(at::equal(r.kept[0], keep1)) << r.kept[0] << keep1;
  EXPECT_TRUE(at::equal(r.out.hidden_states[1], base.hidden_states[1].index_select(1, keep1)));
  // Stage 2: layer 2's weights on what layer 1 made of the kept, renumbered sequence (a run
  // with stage 1 alone gives that input).
  const model::TokenLayout layout1 = base.layout.select(keep1);
  const PdropRun stage1 = run_pdrop(*m, in, R"("layers": [1], "keep_ratios": [0.5])");
  const at::Tensor keep2 =
      official_keep(llama_stage_scores(*m, stage1.out.hidden_states[2], 2), layout1, n0, 0.25);
  EXPECT_TRUE(at::equal(r.kept[1], keep2)) << r.kept[1] << keep2;

  // Visual count after each stage is int(N0 * ratio); text is untouched; positions are 0..S'-1.
  const std::int64_t text = base.layout.length() - n0;
  EXPECT_EQ(r.kept[0].numel(), text + n0 / 2);
  EXPECT_EQ(r.kept[1].numel(), text + n0 / 4);
  EXPECT_EQ(r.out.layout.modality[0].eq(0).sum().item<std::int64_t>(), text);
  EXPECT_TRUE(
      at::equal(r.out.layout.positions.view({-1}), at::arange(r.out.layout.length(), at::kLong)));
  EXPECT_EQ(r.report.at("visual_tokens_per_layer"), nlohmann::json({n0, n0 / 2, n0 / 4}));
  EXPECT_LT(r.report.at("prefill_flops_after").get<double>(),
            r.report.at("prefill_flops_before").get<double>());
}

TEST(PyramidDropGolden, QwenStagesRankTheLastRowOfEachStageLayer) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  for (const std::string name : {"two_images", "video"}) {
    const auto in = load_case("tiny-qwen2-vl", name);
    model::ForwardOptions o;
    o.output_attentions = true;
    const auto base = m->forward(in, o);
    const std::int64_t n0 = base.layout.visual_indices(0).numel();
    const PdropRun r = run_pdrop(*m, in, R"("layers": [1, 2], "ratio": 0.4)");
    ASSERT_EQ(r.kept.size(), 2u) << name;
    // Without a keep at layer 1, its eager attention is what the stage probe computes.
    const at::Tensor keep1 = official_keep(base.attentions[1][0].mean(0)[-1], base.layout, n0, 0.6);
    EXPECT_TRUE(at::equal(r.kept[0], keep1)) << name;
    const PdropRun stage1 = run_pdrop(*m, in, R"("layers": [1], "keep_ratios": [0.6])", true);
    const at::Tensor keep2 =
        official_keep(stage1.out.attentions[2][0].mean(0)[-1], base.layout.select(keep1), n0, 0.36);
    EXPECT_TRUE(at::equal(r.kept[1], keep2)) << name;
    EXPECT_EQ(r.report.at("visual_tokens_after"),
              static_cast<std::int64_t>(static_cast<double>(n0) * 0.36));
  }
}

// Records the decode positions each layer gets.
class Watch : public pipeline::Method {
 public:
  std::string type() const override { return "watch"; }
  void report(pipeline::Report&) const override {}
  void on_block_pre(model::BlockPre& b) override {
    if (!b.prefill) seen[b.layer].push_back(b.layout->positions.view({-1})[0].item<std::int64_t>());
  }
  std::map<std::int64_t, std::vector<std::int64_t>> seen;
};

TEST(PyramidDropGolden, DecodeStepsContinueFromEachStagesCompactedLength) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-llava-1.5/model");
  const auto in = load_case("tiny-llava-1.5", "two_images");
  const std::int64_t t = in.input_ids.size(1);
  pipeline::Pipeline p;
  Watch watch;
  p.attach(watch);
  auto method = PyramidDrop::create(core::Config::parse(R"({"type": "pdrop"})", "t"));
  const auto& pdrop = static_cast<const PyramidDrop&>(*method);
  p.add(std::move(method));
  model::DecodeState state = m->new_state(1);
  model::ForwardOptions o;
  o.hooks = &p;
  o.last_logits_only = true;
  const auto prefill = m->forward_cached(in, o, state);
  ASSERT_EQ(pdrop.kept().size(), 2u);
  const std::int64_t after1 = pdrop.kept()[0].numel(), after2 = pdrop.kept()[1].numel();
  EXPECT_EQ(state.cache->length(0), t);
  EXPECT_EQ(state.cache->length(1), after1);
  EXPECT_EQ(state.cache->length(2), after2);
  model::ForwardInputs step;
  step.input_ids = prefill.logits.argmax(-1).view({1, 1});
  for (int i = 0; i < 3; ++i) {
    step.input_ids = m->forward_cached(step, o, state).logits.argmax(-1).view({1, 1});
  }
  // pdrop_forward at decode: each stage layer moves the positions down by what it removed, so
  // layer l sees step i at (its stage's prefill length) + i.
  const std::vector<std::int64_t> length = {t, after1, after2};
  for (std::int64_t l = 0; l < 3; ++l) {
    ASSERT_EQ(watch.seen[l].size(), 3u);
    for (std::int64_t i = 0; i < 3; ++i) {
      EXPECT_EQ(watch.seen[l][static_cast<std::size_t>(i)], length[static_cast<std::size_t>(l)] + i)
          << "layer " << l << " step " << i;
    }
  }
}

TEST(PyramidDropGolden, EachSequenceOfABatchGetsWhatItGetsAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const auto in = load_case("tiny-qwen2-vl", "batch_left_pad");
  const std::int64_t image_token = m->config().get_int("image_token_id");
  const std::string params = R"("layers": [1, 2])";
  const PdropRun batch = run_pdrop(*m, in, params);
  ASSERT_EQ(batch.kept.size(), 2u);
  auto generated = [&](const model::ForwardInputs& inputs) {
    auto p =
        pipeline::Pipeline::from_json(R"({"methods": [{"type": "pdrop", )" + params + "}]}", "t");
    generate::GenerationConfig g;
    g.max_new_tokens = 5;
    generate::GenerateOptions o;
    o.hooks = &p;
    return generate::generate(*m, inputs, g, o).new_tokens;
  };
  const at::Tensor batch_ids = generated(in);
  for (std::int64_t b = 0; b < 2; ++b) {
    const model::ForwardInputs one = test::row_alone(in, b, image_token);
    const PdropRun alone = run_pdrop(*m, one, params);
    EXPECT_TRUE(at::allclose(batch.out.logits[b][-1], alone.out.logits[0][-1], 1e-4, 1e-5))
        << "row " << b;
    EXPECT_TRUE(at::equal(batch_ids[b], generated(one)[0])) << "row " << b;
  }
}

TEST(PyramidDropGolden, BadSettingsAreClearErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto error = [](const std::string& params) {
    try {
      auto p = pipeline::Pipeline::from_json(R"({"methods": [{"type": "pdrop", )" + params + "}]}",
                                             "p.json");
      auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
      p.bind(pipeline::MethodContext(*m));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(R"("layers": [1, 3])").find("outside this model's decoder layers 1..2"),
            std::string::npos);
  EXPECT_NE(error(R"("layers": [2, 1])").find("strictly increasing"), std::string::npos);
  EXPECT_NE(error(R"("layers": [0])").find("'layers'"), std::string::npos);
  EXPECT_NE(error(R"("ratio": 1)").find("'ratio'"), std::string::npos);
  EXPECT_NE(error(R"("ratio": 0.5, "keep_ratios": [0.5])").find("not both"), std::string::npos);
  EXPECT_NE(error(R"("keep_ratios": [0.25, 0.5])").find("non-increasing"), std::string::npos);
  EXPECT_NE(error(R"("layers": [1], "keep_ratios": [0.5, 0.25])").find("one per entry"),
            std::string::npos);
  EXPECT_NE(error(R"("keep_ratios": [0.5])").find("give 'layers' as well"), std::string::npos);
  EXPECT_NE(error(R"("lambda": 0.5)").find("'lambda'"), std::string::npos);
}

}  // namespace
}  // namespace glimpse::methods::prune
