// Early exit after DeeR-VLA's criterion: the distance, a trigger that never fires reproducing
// greedy ids, threshold 1 exiting at the first exit point with the ids of greedy decoding from
// that layer's logit lens (written out here over a plain session), and the FLOPs it reports.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "feedback_testing.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/feedback/early_exit.h"
#include "test_util.h"

namespace glimpse::methods::feedback {
namespace {

TEST(EarlyExit, TotalVariation) {
  const at::Tensor p = at::tensor({0.5f, 0.5f, 0.0f}).unsqueeze(0);
  const at::Tensor q = at::tensor({0.0f, 0.5f, 0.5f}).unsqueeze(0);
  EXPECT_FLOAT_EQ(total_variation(p, q).item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(total_variation(p, p).item<float>(), 0.0f);
}

TEST(EarlyExit, BadParametersNameTheKey) {
  test::expect_config_errors(
      {{R"({"methods": [{"type": "early_exit", "threshold": 2}]})", "'threshold'"},
       {R"({"methods": [{"type": "early_exit", "interval": 0}]})", "'interval'"},
       {R"({"methods": [{"type": "early_exit", "layers": [2, 1]}]})", "'layers'"}});
}

TEST(EarlyExitGolden, LayerBeyondTheModelIsAnError) {
  GLIMPSE_REQUIRE_FIXTURES();
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "early_exit", "layers": [1, 2]}]})", "test");
  EXPECT_THROW(p.bind(pipeline::MethodContext(test::tiny_qwen2_vl())), ConfigError);
}

// The lens of layer `layer` at each decode step's last row.
class LensAt : public pipeline::Method {
 public:
  explicit LensAt(std::int64_t layer) : layer_(layer) {}
  std::string type() const override { return "lens_at"; }
  void report(pipeline::Report&) const override {}
  void bind(const pipeline::MethodContext& c) override { context_ = c; }
  void on_block_post(model::BlockPost& block) override {
    if (block.layer == layer_)
      lens = context_->logits_from_hidden(block.hidden.select(1, -1), layer_).to(at::kFloat);
  }
  at::Tensor lens;

 private:
  std::int64_t layer_;
  std::optional<pipeline::MethodContext> context_;
};

TEST(EarlyExitGolden, ThresholdOneIsGreedyFromTheFirstExitsLens) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto& m = test::tiny_qwen2_vl();
  const auto inputs = test::load_case("tiny-qwen2-vl", "image_a");
  generate::GenerationConfig config;
  config.max_new_tokens = 6;
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "early_exit", "threshold": 1.0, "layers": [1, 1]}]})", "test");
  p.bind(pipeline::MethodContext(m));
  generate::GenerateOptions options;
  options.hooks = &p;
  const auto got = generate::generate(m, inputs, config, options);

  // Written out: the prefill's argmax, then at each plain step the argmax of layer 1's lens.
  pipeline::Pipeline probe;
  LensAt lens(1);
  probe.attach(lens);
  probe.bind(pipeline::MethodContext(m));
  generate::Session plain(m, &probe);
  at::Tensor token = plain.prefill(inputs).argmax(-1);
  std::vector<std::int64_t> expected = {token.item<std::int64_t>()};
  for (std::int64_t i = 1; i < got.new_tokens.size(1); ++i) {
    plain.step(token);
    token = lens.lens.argmax(-1);
    expected.push_back(token.item<std::int64_t>());
  }
  const at::Tensor ids = got.new_tokens[0].contiguous();
  EXPECT_EQ(std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                      ids.data_ptr<std::int64_t>() + ids.numel()),
            expected);
  const auto e = test::first_entry(p);
  const double steps = static_cast<double>(got.new_tokens.size(1) - 1);
  EXPECT_EQ(e.at("decode_steps").get<double>(), steps);
  EXPECT_EQ(e.at("exited").get<double>(), steps);
  EXPECT_EQ(e.at("mean_exit_layer").get<double>(), 1.0);
  EXPECT_GT(e.at("flops_fill").get<double>(), 0);
}

TEST(EarlyExitGolden, ATriggerThatNeverFiresReproducesGreedyIds) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto e = test::expect_greedy_unchanged(
                     R"({"methods": [{"type": "early_exit", "threshold": 0, "layers": [1, 1]}]})")
                     .entry;
  EXPECT_EQ(e.at("exited").get<double>(), 0);
  EXPECT_EQ(e.at("mean_exit_layer").get<double>(), 2.0);
  EXPECT_EQ(e.at("flops_fill").get<double>(), 0);
}

}  // namespace
}  // namespace glimpse::methods::feedback
