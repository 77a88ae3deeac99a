// MemVR (spec feedback_loops.md section 2(f)): the entropy, the retraced FFN's scale rules, the
// settings that leave the model unchanged, the layer that fires, and the injected values of a
// tiny model against the formula written out here from what the baseline's FFN saw.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "feedback_testing.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/feedback/memvr.h"
#include "test_util.h"

namespace glimpse::methods::feedback {
namespace {

TEST(MemVR, TopTenEntropyIsNormalised) {
  EXPECT_NEAR(top_entropy(at::zeros({1, 50})).item<double>(), 1.0, 1e-6);
  at::Tensor peaked = at::zeros({1, 50});
  peaked[0][7] = 100;
  EXPECT_NEAR(top_entropy(peaked).item<double>(), 0.0, 1e-6);
}

TEST(MemVR, RetracedFfnKeepsTheFfnScale) {
  const at::Tensor x = at::randn({5, 8}), f = at::randn({5, 8}), z = at::randn({6, 8});
  // alpha = 1: the output is A' alone, whose mean magnitude is the FFN's.
  const at::Tensor a = retrace_ffn(x, f, z, 0.3, 0.2, 1.0, false);
  EXPECT_NEAR(a.abs().mean().item<double>(), f.abs().mean().item<double>(), 1e-5);
  // The LLaVA variant: the memory's scale cancels.
  EXPECT_TRUE(at::allclose(retrace_ffn(x, f, z * 7.5, 0.3, 0.2, 0.4, false),
                           retrace_ffn(x, f, z, 0.3, 0.2, 0.4, false), 1e-4, 1e-5));
  EXPECT_TRUE(at::equal(retrace_ffn(x, f, z, 0.3, 0.2, 0.0, true), f));
  // Z = 0: the official code's NaN is guarded.
  EXPECT_TRUE(at::equal(retrace_ffn(x, f, at::zeros({6, 8}), 0.3, 0.2, 0.5, false), f));
}

TEST(MemVR, BadParametersNameTheKey) {
  test::expect_config_errors(
      {{R"({"methods": [{"type": "memvr", "alpha": 2}]})", "'alpha'"},
       {R"({"methods": [{"type": "memvr", "threshold": -1}]})", "'threshold'"},
       {R"({"methods": [{"type": "memvr", "layers": [5]}]})", "'layers'"},
       {R"({"methods": [{"type": "memvr", "activation": "gelu"}]})", "'activation'"}});
}

// Records what the FFN of `layer` saw and gave (after the methods before it), the visual
// tokens, and the entropy of the lens at every layer's last row.
class Recorder : public pipeline::Method {
 public:
  explicit Recorder(std::int64_t layer) : layer_(layer) {}
  std::string type() const override { return "recorder"; }
  void report(pipeline::Report&) const override {}
  void bind(const pipeline::MethodContext& context) override { context_ = context; }
  void on_vision_out(model::VisionOut& v) override {
    if (v.image_embeds.defined()) z = v.image_embeds.clone();
  }
  void on_mlp(model::MlpSite& mlp) override {
    if (mlp.layer != layer_ || !mlp.prefill) return;
    x = mlp.input.clone();
    f = mlp.output.clone();
  }
  void on_block_post(model::BlockPost& block) override {
    if (!block.prefill) return;
    const at::Tensor lens =
        context_->logits_from_hidden(block.hidden.select(1, -1), block.layer).to(at::kFloat);
    // Written out: softmax of the 10 largest, entropy / log 10.
    std::vector<float> v(lens.data_ptr<float>(), lens.data_ptr<float>() + lens.size(1));
    std::sort(v.begin(), v.end(), std::greater<float>());
    double sum = 0, h = 0;
    for (int i = 0; i < 10; ++i) sum += std::exp(v[i] - v[0]);
    for (int i = 0; i < 10; ++i) {
      const double p = std::exp(v[i] - v[0]) / sum;
      h -= p * std::log(p);
    }
    entropy.push_back(h / std::log(10.0));
  }
  at::Tensor x, f, z;
  std::vector<double> entropy;

 private:
  std::int64_t layer_;
  std::optional<pipeline::MethodContext> context_;
};

TEST(MemVRGolden, InjectedValuesFollowTheFormula) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto& m = test::tiny_qwen2_vl();
  const auto inputs = test::load_case("tiny-qwen2-vl", "image_a");
  // Baseline: what layer 2's FFN sees, and the lens entropy of every layer.
  pipeline::Pipeline base;
  Recorder before(2);
  base.attach(before);
  base.bind(pipeline::MethodContext(m));
  model::ForwardOptions o;
  o.hooks = &base;
  const at::Tensor plain_logits = m.forward(inputs, o).logits;
  ASSERT_EQ(before.entropy.size(), 3u);

  // A threshold just below layer 1's entropy: layer 1 (the only one in (0, 2)) fires, layer 2's
  // FFN is retraced.
  const double threshold = before.entropy[1] - 1e-4;
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "memvr", "alpha": 0.5, "layers": [0, 2], "threshold": )" +
          std::to_string(threshold) + "}]}",
      "test");
  Recorder after(2);
  p.attach(after);
  p.bind(pipeline::MethodContext(m));
  o.hooks = &p;
  const at::Tensor logits = m.forward(inputs, o).logits;
  EXPECT_EQ(test::first_entry(p).at("retraced_per_layer"), nlohmann::json({0, 0, 1}));
  EXPECT_FALSE(at::allclose(logits, plain_logits));

  // Written out from MemVR memvr.py:LlamaMLP.forward (LLaVA variant).
  const double w_up = m.weight("model.layers.2.mlp.up_proj.weight").abs().mean().item<double>();
  const double w_down = m.weight("model.layers.2.mlp.down_proj.weight").abs().mean().item<double>();
  const at::Tensor z = before.z.to(at::kFloat), x = before.x[0].to(at::kFloat);
  const at::Tensor f = before.f[0].to(at::kFloat);
  const at::Tensor w1 = z * (w_up / z.abs().mean().item<double>());
  const at::Tensor w2 = z.t() * (w_down / z.abs().mean().item<double>());
  const at::Tensor a = at::matmul(at::matmul(x, w1.t()), w2.t());
  const at::Tensor expected = 0.5 * f + 0.5 * (f.abs().mean() / a.abs().mean()) * a;
  EXPECT_TRUE(at::allclose(after.x[0], before.x[0]));
  EXPECT_TRUE(at::allclose(after.f[0].to(at::kFloat), expected, 1e-4, 1e-5));

  // Just above: nothing fires and the logits are the baseline's, bit for bit.
  pipeline::Pipeline quiet = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "memvr", "alpha": 0.5, "layers": [0, 2], "threshold": )" +
          std::to_string(before.entropy[1] + 1e-4) + "}]}",
      "test");
  quiet.bind(pipeline::MethodContext(m));
  o.hooks = &quiet;
  EXPECT_TRUE(at::equal(m.forward(inputs, o).logits, plain_logits));
  EXPECT_EQ(test::first_entry(quiet).at("triggered"), 0);
}

TEST(MemVRGolden, ZeroStrengthSettingsReproduceGreedyIds) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const char* json :
       {R"({"methods": [{"type": "memvr", "threshold": 1.0, "layers": [0, 2]}]})",
        R"({"methods": [{"type": "memvr", "threshold": 0, "alpha": 0, "layers": [0, 2]}]})",
        R"({"methods": [{"type": "memvr", "threshold": 0, "layers": [1, 2]}]})"}) {
    test::expect_greedy_unchanged(json);
  }
  // Threshold 0 and alpha 0 fire at every forward (prefill and decode steps) at the window's
  // first layer, and change nothing.
  const auto run = test::expect_greedy_unchanged(
      R"({"methods": [{"type": "memvr", "threshold": 0, "alpha": 0, "layers": [0, 2]}]})");
  const auto& e = run.entry;
  EXPECT_EQ(e.at("triggered"), e.at("forwards"));
  EXPECT_EQ(e.at("forwards").get<std::int64_t>(), run.tokens);
  EXPECT_EQ(e.at("retraced_per_layer").at(2), e.at("forwards"));
}

}  // namespace
}  // namespace glimpse::methods::feedback
