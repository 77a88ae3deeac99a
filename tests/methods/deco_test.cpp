// DeCo (spec feedback_loops.md section 3(f)): the candidate set, the anchor's tie rule, the
// zero-strength settings that leave greedy decoding unchanged, and the calibrated logits of a
// tiny model against a computation from the reference's hidden states written out here.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "feedback_testing.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/feedback/deco.h"
#include "methods/prune/selection.h"
#include "test_util.h"

namespace glimpse::methods::feedback {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

at::Tensor row(std::vector<float> values) {
  return at::tensor(values, at::kFloat).unsqueeze(0);
}

std::int64_t finite_count(const at::Tensor& t) {
  return at::isfinite(t).sum().item<std::int64_t>();
}

TEST(DeCo, CandidatesAreTheShortestTopPPrefix) {
  // Probabilities [0.5, 0.3, 0.15, 0.05]: cumulative 0.5 / 0.8 / 0.95 / 1.0.
  const at::Tensor z = row({std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)});
  const at::Tensor lens = at::zeros({1, 1, 4});
  std::vector<DecoChoice> c;
  EXPECT_EQ(finite_count(deco_calibrate(z, lens, 0.6, 0.9, 20, &c)), 3);
  EXPECT_EQ(finite_count(deco_calibrate(z, lens, 0.6, 0.75, 20, &c)), 2);
  EXPECT_EQ(finite_count(deco_calibrate(z, lens, 0.6, 0.999, 2, &c)), 2);  // capped at top_k
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].candidates, 3);
  EXPECT_EQ(c[1].candidates, 2);
}

TEST(DeCo, AnchorTiesGoToTheEarliestLayerAndTheMixIsExact) {
  const at::Tensor z = row({2.0f, 1.5f, -1.0f, -3.0f});
  // Layers 0 and 1 identical, layer 2 less sure of any candidate.
  const at::Tensor sure = row({0.0f, 4.0f, 0.0f, 0.0f});
  const at::Tensor lens = at::stack({sure, sure, row({1.0f, 1.0f, 1.0f, 1.0f})}, 0);
  std::vector<DecoChoice> c;
  const at::Tensor out = deco_calibrate(z, lens, 0.5, 0.99, 3, &c);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].anchor, 0);
  const double p_max = std::exp(4.0) / (std::exp(4.0) + 3.0);
  EXPECT_NEAR(c[0].p_max, p_max, 1e-6);
  // C = the top 3 (cumulative probability of the top 2 is below 0.99).
  EXPECT_NEAR(out[0][0].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(out[0][1].item<double>(), 1.5 + 0.5 * p_max * 4.0, 1e-5);
  EXPECT_NEAR(out[0][2].item<double>(), -1.0, 1e-6);
  EXPECT_EQ(out[0][3].item<float>(), -kInf);
  // The correction moved the argmax to the token the anchor layer is sure of.
  EXPECT_EQ(out.argmax(1).item<std::int64_t>(), 1);
}

TEST(DeCo, ZeroAlphaOrOneCandidateKeepsTheArgmax) {
  const at::Tensor z = at::randn({3, 50}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor lens = at::randn({4, 3, 50}, at::TensorOptions().dtype(at::kFloat)) * 5;
  EXPECT_TRUE(at::equal(deco_calibrate(z, lens, 0.0, 0.9, 20).argmax(1), z.argmax(1)));
  EXPECT_TRUE(at::equal(deco_calibrate(z, lens, 3.0, 0.9, 1).argmax(1), z.argmax(1)));
  // The final layer as its own anchor: (1 + alpha p_max) z on C, so the argmax stays.
  EXPECT_TRUE(at::equal(deco_calibrate(z, z.unsqueeze(0), 0.6, 0.9, 20).argmax(1), z.argmax(1)));
}

TEST(DeCo, BadParametersNameTheKey) {
  test::expect_config_errors({{R"({"methods": [{"type": "deco", "alpha": -1}]})", "'alpha'"},
                              {R"({"methods": [{"type": "deco", "top_p": 0}]})", "'top_p'"},
                              {R"({"methods": [{"type": "deco", "top_k": 0}]})", "'top_k'"},
                              {R"({"methods": [{"type": "deco", "layers": [3, 1]}]})", "'layers'"},
                              {R"({"methods": [{"type": "deco", "window": 2}]})", "'window'"}});
}

TEST(DeCoGolden, CalibratedLogitsMatchTheHiddenStatesLens) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto& m = test::tiny_qwen2_vl();
  const auto inputs = test::load_case("tiny-qwen2-vl", "image_a");
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "deco", "alpha": 0.6, "top_p": 0.9, "top_k": 20}]})", "test");
  p.bind(pipeline::MethodContext(m));
  const auto& deco = dynamic_cast<const DeCo&>(*p.methods()[0]);
  const std::int64_t layers = m.num_layers();
  // The scaled default window: hidden_states round(20 L / 32) .. round(28 L / 32).
  ASSERT_FALSE(deco.window().empty());
  EXPECT_EQ(deco.window().back(), std::max<std::int64_t>(prune::scale_layer(28, layers), 1) - 1);

  model::ForwardOptions plain;
  plain.output_hidden_states = true;
  const auto ref = m.forward(inputs, plain);
  model::ForwardOptions hooked;
  hooked.hooks = &p;
  const at::Tensor got = m.forward(inputs, hooked).logits.select(1, -1).to(at::kFloat)[0];

  // Written out from Deco utils.py:deco_greedy_search with plain loops.
  auto values = [](const at::Tensor& t) {
    const at::Tensor c = t.to(at::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  const std::vector<float> z = values(ref.logits.select(1, -1)[0]);
  const std::int64_t v = static_cast<std::int64_t>(z.size());
  const std::vector<float> probs =
      values(at::softmax(ref.logits.select(1, -1)[0].to(at::kFloat), 0));
  std::vector<std::pair<float, std::int64_t>> order;
  for (std::int64_t i = 0; i < v; ++i) order.emplace_back(probs[i], i);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::int64_t> cands;
  double cumulative = 0;
  for (std::int64_t i = 0; i < 20; ++i) {
    cands.push_back(order[i].second);
    cumulative += order[i].first;
    if (cumulative >= 0.9) break;
  }
  double p_max = -1;
  std::vector<float> anchor;
  for (const auto l : deco.window()) {
    // hidden_states[L] is after the final norm: the last layer's lens reads its input.
    const at::Tensor hidden =
        (l + 1 == layers ? ref.last_layer_output_prenorm : ref.hidden_states[l + 1]).select(1, -1);
    const at::Tensor lens = m.logits_from_hidden(hidden, true).to(at::kFloat)[0];
    const std::vector<float> p_lens = values(at::softmax(lens, 0));
    for (const auto c : cands) {
      if (p_lens[c] > p_max) {  // strict: the earliest layer keeps a tie
        p_max = p_lens[c];
        anchor = values(lens);
      }
    }
  }
  const std::vector<float> out = values(got);
  std::int64_t masked = 0;
  for (std::int64_t i = 0; i < v; ++i) {
    const bool in = std::find(cands.begin(), cands.end(), i) != cands.end();
    if (!in) {
      masked += out[i] == -kInf;
      continue;
    }
    const double expected = z[i] + 0.6 * p_max * anchor[i];
    EXPECT_NEAR(out[i], expected, 1e-4 * (1 + std::abs(expected))) << i;
  }
  EXPECT_EQ(masked, v - static_cast<std::int64_t>(cands.size()));
}

TEST(DeCoGolden, ZeroStrengthReproducesGreedyIds) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const char* json : {R"({"methods": [{"type": "deco", "alpha": 0}]})",
                           R"({"methods": [{"type": "deco", "alpha": 2.0, "top_k": 1}]})"}) {
    const auto run = test::expect_greedy_unchanged(json, 8);
    EXPECT_EQ(run.entry.at("calibrated").get<double>(), static_cast<double>(run.tokens))
        << "one calibration per forward";
  }
}

}  // namespace
}  // namespace glimpse::methods::feedback
