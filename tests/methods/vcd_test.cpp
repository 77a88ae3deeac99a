// VCD (spec feedback_loops.md section 5(f)): the noise schedule's golden values, the plausibility
// cut, zero strength reproducing greedy ids, the first step's contrast against two plain forwards
// written out here, and the contrast session in lockstep with the run's session and its forks.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "feedback_testing.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/feedback/candidates.h"
#include "methods/feedback/vcd.h"
#include "test_util.h"

namespace glimpse::methods::feedback {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(VCD, NoiseScheduleGoldenValues) {
  // beta_0 = 2.23e-5 (alpha_bar_0 = 0.99998, held in fp32 as the official code: 1 - alpha_bar_0
  // is 2.24e-5 after the fp32 rounding of 1 - beta_0); t = 500: 0.745; t = 999: 0.081.
  EXPECT_NEAR(1 - std::pow(diffusion_noise(0).signal, 2), 2.23e-5, 2e-7);
  EXPECT_NEAR(diffusion_noise(500).signal, 0.863, 1e-3);
  EXPECT_NEAR(diffusion_noise(500).noise, 0.505, 1e-3);
  EXPECT_NEAR(diffusion_noise(999).signal, 0.285, 1e-3);
  EXPECT_NEAR(diffusion_noise(999).noise, 0.959, 1e-3);
  EXPECT_THROW(diffusion_noise(1000), InputError);
  // Reproducible with a seed, and scaled as the schedule says.
  const at::Tensor x = at::ones({4, 6});
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(3);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor a = add_diffusion_noise(x, 500, g1);
  EXPECT_TRUE(at::equal(a, add_diffusion_noise(x, 500, g2)));
  auto g3 = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor eps = at::randn({4, 6}, g3);
  EXPECT_TRUE(at::allclose(a, 0.863 * x + 0.505 * eps, 1e-3, 1e-3));
}

TEST(VCD, PlausibilityCutAndContrast) {
  const at::Tensor l = at::tensor({3.0f, 2.5f, 0.0f, -4.0f}).unsqueeze(0);
  const at::Tensor noised = at::tensor({3.0f, 0.5f, 1.0f, 0.0f}).unsqueeze(0);
  // beta = 1 keeps only the argmax of l.
  const at::Tensor one = contrast_logits(l, noised, 1.0, 1.0);
  EXPECT_EQ(at::isfinite(one).sum().item<std::int64_t>(), 1);
  EXPECT_EQ(one.argmax(1).item<std::int64_t>(), 0);
  // beta = 0.1: tokens within log(10) of the top stay; d = 2 l - l'.
  const at::Tensor d = contrast_logits(l, noised, 1.0, 0.1);
  EXPECT_FLOAT_EQ(d[0][0].item<float>(), 3.0f);
  EXPECT_FLOAT_EQ(d[0][1].item<float>(), 4.5f);
  EXPECT_EQ(d[0][2].item<float>(), -kInf);  // 0 < 3 + log(0.1)
  EXPECT_EQ(d.argmax(1).item<std::int64_t>(), 1);
  // The same image on both sides: d = l on the plausible set.
  const at::Tensor same = contrast_logits(l, l, 1.0, 0.1);
  EXPECT_TRUE(at::equal(same.narrow(1, 0, 2), l.narrow(1, 0, 2)));
}

TEST(VCD, BadParametersNameTheKey) {
  test::expect_config_errors(
      {{R"({"methods": [{"type": "vcd", "alpha": -1}]})", "'alpha'"},
       {R"({"methods": [{"type": "vcd", "beta": 0}]})", "'beta'"},
       {R"({"methods": [{"type": "vcd", "noise_step": 1000}]})", "'noise_step'"},
       {R"({"methods": [{"type": "vcd", "noise": 1}]})", "'noise'"}});
}

TEST(VCDGolden, FirstStepIsTheContrastOfTwoForwards) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto& m = test::tiny_qwen2_vl();
  const auto inputs = test::load_case("tiny-qwen2-vl", "image_a");
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "vcd", "alpha": 1.0, "beta": 0.1, "seed": 7}]})", "test");
  p.bind(pipeline::MethodContext(m));
  generate::Session session(m, &p);
  const at::Tensor got = session.prefill(inputs).to(at::kFloat);

  const at::Tensor l = m.forward(inputs, {}).logits.select(1, -1).to(at::kFloat);
  model::ForwardInputs noised = inputs;
  auto g = at::make_generator<at::CPUGeneratorImpl>(7);
  noised.pixel_values = add_diffusion_noise(inputs.pixel_values, 500, g);
  const at::Tensor l2 = m.forward(noised, {}).logits.select(1, -1).to(at::kFloat);
  EXPECT_FALSE(at::allclose(l, l2)) << "the noise changed nothing";
  const at::Tensor max = std::get<0>(l.max(-1, true));
  const at::Tensor plausible = l >= max + std::log(0.1);
  EXPECT_TRUE(at::equal(at::isfinite(got), plausible));
  const at::Tensor expected = 2 * l - l2;
  EXPECT_TRUE(
      at::allclose(got.masked_select(plausible), expected.masked_select(plausible), 1e-4, 1e-4));
  EXPECT_EQ(test::first_entry(p).at("contrast_prefills"), 1);
  EXPECT_EQ(test::first_entry(p).at("noised_tensors"), 1);
}

TEST(VCDGolden, ZeroStrengthReproducesGreedyIds) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto e =
      test::expect_greedy_unchanged(R"({"methods": [{"type": "vcd", "alpha": 0, "beta": 1e-30}]})")
          .entry;
  EXPECT_EQ(e.at("contrast_prefills"), 1);
}

TEST(VCDGolden, ContrastSessionFollowsTheRunAndItsForks) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto& m = test::tiny_qwen2_vl();
  const auto inputs = test::load_case("tiny-qwen2-vl", "image_a");
  pipeline::Pipeline p = pipeline::Pipeline::from_json(R"({"methods": [{"type": "vcd"}]})", "test");
  p.bind(pipeline::MethodContext(m));
  const auto& vcd = dynamic_cast<const VCD&>(*p.methods()[0]);
  generate::GenerationConfig config;
  config.max_new_tokens = 5;
  generate::Session session(m, &p);
  session.prefill(inputs);
  generate::Generator gen(session, config);
  while (gen.step()) {
    ASSERT_NE(vcd.contrast(), nullptr);
    EXPECT_TRUE(at::equal(vcd.contrast()->lengths(), session.lengths()));
  }
  gen.flush();
  EXPECT_TRUE(at::equal(vcd.contrast()->ids(), session.ids()));
  const std::int64_t steps = session.stats().steps;
  EXPECT_EQ(test::first_entry(p).at("contrast_forwards"), steps);
  EXPECT_EQ(test::first_entry(p).at("contrasted"), steps + 1);

  // Candidates forked from one prompt (candidate 0 alone, then two stacked): each must be the run
  // it would be with VCD alone, so the contrast session followed every fork.
  const auto processor = model::Processor::load(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  generate::Session prompt(m, &p);
  prompt.prefill(inputs);
  generate::GenerationConfig sampled = config;
  sampled.do_sample = true;
  sampled.seed = 3;
  const auto round = decode_candidates(prompt, 3, config, sampled, processor->tokenizer());
  // Candidate 0 continues the prompt's own fork; the stacked pair re-forks it once.
  EXPECT_EQ(test::first_entry(p).at("refollows").get<std::int64_t>(), 1);
  for (std::int64_t i = 0; i < 3; ++i) {
    generate::GenerateOptions alone;
    alone.hooks = &p;
    if (i > 0) alone.seeds = {sampled.seed + static_cast<std::uint64_t>(i)};
    const auto own = generate::generate(m, inputs, i == 0 ? config : sampled, alone);
    const at::Tensor ids = own.new_tokens[0].narrow(0, 0, own.lengths[0]).contiguous();
    EXPECT_EQ(round.candidates[i].ids,
              std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                        ids.data_ptr<std::int64_t>() + ids.numel()))
        << "candidate " << i;
  }
}

}  // namespace
}  // namespace glimpse::methods::feedback
