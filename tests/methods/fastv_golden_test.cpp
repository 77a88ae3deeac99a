// FastV's testable properties (../shared/specs/pruning_kv.md section 2.1 (e)) on the tiny
// Qwen2-VL and LLaVA fixtures.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/prune/fastv.h"
#include "test_util.h"

namespace glimpse::methods::prune {
namespace {

using test::load_case;

struct FastVRun {
  model::ForwardOutput out;
  at::Tensor kept;
  pipeline::Report report;
};

FastVRun run_fastv(model::Model& m, const model::ForwardInputs& in, std::int64_t layer,
                   double ratio) {
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      "{\"methods\": [{\"type\": \"fastv\", \"layer\": " + std::to_string(layer) +
          ", \"ratio\": " + std::to_string(ratio) + "}]}",
      "test");
  model::ForwardOptions o;
  o.output_hidden_states = true;
  o.hooks = &p;
  FastVRun r;
  r.out = m.forward(in, o);
  r.kept = static_cast<const FastV&>(*p.methods()[0]).kept();
  r.report = p.report();
  return r;
}

TEST(FastVGolden, ZeroRatioReproducesTheBaselineExactly) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const at::Tensor base = m->forward(in, {}).logits;
  const FastVRun r = run_fastv(*m, in, 2, 0.0);
  EXPECT_TRUE(at::equal(r.out.logits, base));
  // A pipeline without methods is the plain forward too.
  auto empty = pipeline::Pipeline::from_json(R"({"methods": []})", "test");
  model::ForwardOptions o;
  o.hooks = &empty;
  EXPECT_TRUE(at::equal(m->forward(in, o).logits, base));
  generate::GenerationConfig g;
  g.max_new_tokens = 4;
  const at::Tensor plain_ids = generate::generate(*m, in, g).new_tokens;
  generate::GenerateOptions with_empty;
  with_empty.hooks = &empty;
  EXPECT_TRUE(at::equal(generate::generate(*m, in, g, with_empty).new_tokens, plain_ids));
  const auto& e = r.report.entries().at(0);
  EXPECT_EQ(e.numbers.at("visual_tokens_before"), 17);
  EXPECT_EQ(e.numbers.at("visual_tokens_after"), 17);
}

class FastVCasesGolden
    : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::int64_t>> {};

TEST_P(FastVCasesGolden, KeepsTopAttendedVisualTokensWithOriginalPositions) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model_name, case_name, layer] = GetParam();
  auto m = model::load_model(test::fixtures_dir() + "/" + model_name + "/model");
  const auto in = load_case(model_name, case_name);
  model::ForwardOptions all;
  all.output_hidden_states = all.output_attentions = true;
  const auto base = m->forward(in, all);
  const double ratio = 0.5;
  const FastVRun r = run_fastv(*m, in, layer, ratio);

  const at::Tensor visual = base.layout.visual_indices(0);
  const std::int64_t n = visual.numel();
  const auto expected_kept = static_cast<std::int64_t>(std::nearbyint(n * (1 - ratio)));
  ASSERT_GT(n, 0);
  // Property 2: kept count, text never dropped, increasing order.
  EXPECT_EQ(r.kept.numel(), base.layout.length() - n + expected_kept);
  EXPECT_TRUE((r.kept.slice(0, 1) > r.kept.slice(0, 0, -1)).all().item<bool>());
  const at::Tensor kept_modality = base.layout.modality[0].index_select(0, r.kept);
  EXPECT_EQ(kept_modality.eq(0).sum().item<std::int64_t>(), base.layout.length() - n);
  // Property 3: kept tokens keep their original positions (all M-RoPE streams).
  EXPECT_TRUE(at::equal(r.out.layout.positions, base.layout.positions.index_select(2, r.kept)));
  EXPECT_TRUE(at::equal(r.out.layout.original_index[0], r.kept));
  // Property 4: layers before K are untouched; layer K's input is the baseline's, selected.
  for (std::int64_t i = 0; i < layer; ++i) {
    EXPECT_TRUE(at::equal(r.out.hidden_states[i], base.hidden_states[i])) << i;
  }
  EXPECT_TRUE(
      at::equal(r.out.hidden_states[layer], base.hidden_states[layer].index_select(1, r.kept)));
  // Property 5: the kept visual set is the top-k of the head-mean last row at layer K-1.
  const at::Tensor row = base.attentions[layer - 1][0].mean(0)[-1];
  const at::Tensor top = std::get<1>(at::topk(row.index_select(0, visual), expected_kept));
  const at::Tensor want = std::get<0>(at::sort(visual.index_select(0, top)));
  const at::Tensor got = r.kept.masked_select(kept_modality.ne(0));
  EXPECT_TRUE(at::equal(got, want)) << got << want;
  // Logits follow the kept tokens; the report says what happened.
  EXPECT_EQ(r.out.logits.size(1), r.kept.numel());
  const auto& e = r.report.entries().at(0);
  EXPECT_EQ(e.type, "fastv");
  EXPECT_EQ(e.numbers.at("visual_tokens_after"), expected_kept);
  EXPECT_LT(e.numbers.at("prefill_flops_after"), e.numbers.at("prefill_flops_before"));
}

INSTANTIATE_TEST_SUITE_P(Models, FastVCasesGolden,
                         ::testing::Values(std::make_tuple("tiny-qwen2-vl", "two_images", 2),
                                           std::make_tuple("tiny-qwen2-vl", "video", 1),
                                           std::make_tuple("tiny-qwen2.5-vl", "image_a", 2),
                                           std::make_tuple("tiny-llava-1.5", "two_images", 1)));

TEST(FastVGolden, CacheIsConsistentForDecoding) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const std::int64_t t = in.input_ids.size(1);
  auto p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "fastv", "layer": 2, "ratio": 0.5}]})", "t");
  model::DecodeState state = m->new_state(1);
  model::ForwardOptions o;
  o.hooks = &p;
  o.last_logits_only = true;
  const auto prefill = m->forward_cached(in, o, state);
  const std::int64_t kept = t - 17 + 8;  // round(17 * 0.5) = 8, half to even
  // Property 7: layers < K hold T keys, layers >= K hold T - N + kept.
  EXPECT_EQ(state.cache->length(0), t);
  EXPECT_EQ(state.cache->length(1), t);
  EXPECT_EQ(state.cache->length(2), kept);
  model::ForwardInputs step;
  step.input_ids = prefill.logits.argmax(-1).view({1, 1});
  const auto next = m->forward_cached(step, o, state);
  EXPECT_EQ(state.cache->length(0), t + 1);
  EXPECT_EQ(state.cache->length(2), kept + 1);
  // Property 8: the decode position is the full prompt's next position (T + rope_delta), not the
  // compacted length.
  EXPECT_EQ(next.position_ids[0][0][0].item<std::int64_t>(),
            t + prefill.rope_deltas[0][0].item<std::int64_t>());
  // Generation with FastV runs end to end and R = 0 generates what no pruning does.
  generate::GenerationConfig g;
  g.max_new_tokens = 5;
  const auto plain = generate::generate(*m, in, g);
  auto zero = pipeline::Pipeline::from_json(R"({"methods": [{"type": "fastv", "ratio": 0}]})", "t");
  generate::GenerateOptions options;
  options.hooks = &zero;
  EXPECT_TRUE(at::equal(generate::generate(*m, in, g, options).new_tokens, plain.new_tokens));
  options.hooks = &p;
  EXPECT_EQ(generate::generate(*m, in, g, options).new_tokens.size(1), 5);
}

TEST(PipelineTest, BadSpecsAreConfigErrorsNamingTheKey) {
  auto error = [](const std::string& spec) {
    try {
      pipeline::Pipeline::from_json(spec, "p.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(R"({"methods": [{"type": "magic"}]})")
                .find("unknown method 'magic' (known: adakv, attention_map, deco, early_exit, "
                      "fastv, h2o, logit_lens, memvr, pdrop, pyramidkv, snapkv, sparsemm, "
                      "streaming_llm, vcd, visionzip)"),
            std::string::npos);
  EXPECT_NE(
      error(R"({"methods": [{"type": "fastv", "ratio": 1.5}]})").find("methods[0]: key 'ratio'"),
      std::string::npos);
  EXPECT_NE(error(R"({"methods": [{"type": "fastv", "layer": 0}]})").find("'layer'"),
            std::string::npos);
  EXPECT_NE(error(R"({"methods": [{"type": "fastv", "rank": 3}]})").find("'rank'"),
            std::string::npos);
  EXPECT_NE(error(R"({"methods": [{"layer": 2}]})").find("'type': missing"), std::string::npos);
  EXPECT_NE(error(R"({"methods": {}})").find("'methods'"), std::string::npos);
  EXPECT_NE(error(R"({"method": []})").find("'method'"), std::string::npos);
  EXPECT_NE(error(R"({"methods": [)").find("invalid JSON"), std::string::npos);
  EXPECT_THROW(pipeline::Pipeline::from_argument("/nonexistent/p.json"), InputError);
  EXPECT_EQ(pipeline::Pipeline::from_json(R"({"methods": []})", "p").methods().size(), 0u);
  const auto report =
      pipeline::Pipeline::from_json(R"({"methods": [{"type": "fastv"}]})", "p").report();
  const auto j = nlohmann::json::parse(report.to_json());
  EXPECT_EQ(j.at("methods")[0].at("type"), "fastv");
  EXPECT_EQ(j.at("methods")[0].at("layer"), 2);
}

}  // namespace
}  // namespace glimpse::methods::prune
