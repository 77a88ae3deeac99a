// CyberV as a controller on the tiny Qwen2-VL with a 64-frame video: the sensor's row is the
// eager attention's last row summed over heads (each head sums to 1), one candidate is the plain
// greedy run, and a full run reports one prefill per round against the official 2N - 1.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "feedback_testing.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "methods/feedback/cyberv.h"
#include "test_util.h"

namespace glimpse::methods::feedback {
namespace {

TEST(CyberV, BadParametersNameTheKey) {
  test::expect_config_errors(
      {{R"({"controller": {"type": "cyberv", "candidates": 0}})", "'candidates'"},
       {R"({"controller": {"type": "cyberv", "theta": 1.5}})", "'theta'"},
       {R"({"controller": {"type": "cyberv", "max_thinking_tokens": 0}})", "'max_thinking_tokens'"},
       {R"({"controller": {"type": "cyberv", "letters": ["a"]}})", "'letters'"},
       {R"({"controller": {"type": "cyberv", "n": 4}})", "'n'"}});
}

struct Tiny {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<model::Processor> processor;
  model::ProcessorRequest request;
  model::ProcessedInputs processed;
};

// 64 frames of 84 x 56 (the tiny processor's minimum area): 32 temporal groups of 6 tokens.
Tiny& tiny() {
  static Tiny t = [] {
    Tiny t;
    const std::string dir = test::fixtures_dir() + "/tiny-qwen2-vl/model";
    t.model = model::load_model(dir);
    t.processor = model::Processor::load(dir);
    model::VideoInput video;
    video.fps = 2.0;
    for (int f = 0; f < 64; ++f) {
      vision::Image frame(84, 56);
      for (std::size_t i = 0; i < frame.rgb.size(); ++i)
        frame.rgb[i] = static_cast<std::uint8_t>((i * 7 + static_cast<std::size_t>(f) * 13) % 251);
      video.frames.push_back(std::move(frame));
    }
    t.request.videos.push_back(std::move(video));
    t.request.prompt = "Which colour is the ball? A. red B. blue C. green D. yellow";
    t.processed = t.processor->process(t.request);
    return t;
  }();
  return t;
}

generate::GenerationConfig answer_config(const Tiny& t) {
  generate::GenerationConfig c;
  c.max_new_tokens = 3;
  c.eos_token_ids = t.processor->eos_token_ids();
  return c;
}

TEST(CyberVGolden, SensorRowIsTheEagerLastRowSummedOverHeads) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  pipeline::Pipeline p;
  CyberVSensor sensor;
  p.attach(sensor);
  p.bind(pipeline::MethodContext(*t.model));
  generate::Session session(*t.model, &p);
  session.prefill(t.processed.inputs);
  model::ForwardOptions eager;
  eager.output_attentions = true;
  const auto ref = t.model->forward(t.processed.inputs, eager);
  const at::Tensor last = ref.attentions.back().select(2, -1).sum(1).to(at::kFloat);  // [B, keys]
  ASSERT_EQ(sensor.latest().sizes(), last.sizes());
  EXPECT_TRUE(at::allclose(sensor.latest(), last, 1e-5, 1e-6));
  EXPECT_NEAR(sensor.latest().sum().item<double>(),
              static_cast<double>(t.model->decoder_shape().num_heads), 1e-4);
}

TEST(CyberVGolden, OneCandidateIsThePlainGreedyRun) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  const auto config = answer_config(t);
  const auto plain = generate::generate(*t.model, t.processed.inputs, config);
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"controller": {"type": "cyberv", "candidates": 1, "theta": 1.0}})", "test");
  p.bind(pipeline::MethodContext(*t.model, t.processor.get()));
  generate::Session session(*t.model, &p);
  session.prefill(t.processed.inputs);
  pipeline::ControllerRequest request;
  request.session = &session;
  request.config = config;
  request.request = &t.request;
  request.processed = &t.processed;
  const auto result = p.controller()->run(request);
  const at::Tensor ids = plain.new_tokens[0].narrow(0, 0, plain.lengths[0]).contiguous();
  EXPECT_EQ(result.ids, std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                                  ids.data_ptr<std::int64_t>() + ids.numel()));
  const auto report = nlohmann::json::parse(p.report().to_json()).at("controller");
  EXPECT_EQ(report.at("rounds").size(), 1u);  // no CoT candidate, no drift, no round 2
}

TEST(CyberVGolden, RoundsReportOnePrefill) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  // theta 1 never stops (every score is at most 1), so key frames decide whether round 2 runs.
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"controller": {"type": "cyberv", "candidates": 4, "theta": 1.0, "force_letter": true,
          "max_thinking_tokens": 4, "seed": 1}})",
      "test");
  p.bind(pipeline::MethodContext(*t.model, t.processor.get()));
  generate::Session session(*t.model, &p);
  session.prefill(t.processed.inputs);
  pipeline::ControllerRequest request;
  request.session = &session;
  request.config = answer_config(t);
  request.request = &t.request;
  request.processed = &t.processed;
  const auto result = p.controller()->run(request);
  const auto report = nlohmann::json::parse(p.report().to_json()).at("controller");
  const auto& round1 = report.at("rounds").at(0);
  EXPECT_EQ(round1.at("prefills"), 1);
  EXPECT_EQ(round1.at("official_prefills"), 7);
  EXPECT_TRUE(round1.at("attention_signal").get<bool>());
  EXPECT_FALSE(round1.at("stop").get<bool>());
  // Forced letters: the origin answer parses and has its token's probability.
  EXPECT_NE(round1.at("answers").at(0), "No Answer Found");
  EXPECT_FALSE(round1.at("probs").at(0).is_null());
  const auto frames = round1.at("key_frames").get<std::vector<std::int64_t>>();
  for (const auto f : frames) {
    EXPECT_GE(f, 0);
    EXPECT_LT(f, 64);
  }
  // This seed's CoT candidates attend less to some segments than the origin: round 2 runs.
  ASSERT_FALSE(frames.empty()) << report.dump();
  ASSERT_EQ(report.at("rounds").size(), 2u) << report.dump();
  const auto& round2 = report.at("rounds").at(1);
  EXPECT_EQ(round2.at("prefills"), 0);
  EXPECT_EQ(round2.at("appends"), 1);
  EXPECT_EQ(round2.at("key_frames"), round1.at("key_frames"));
  EXPECT_GT(round2.at("added_tokens").get<std::int64_t>(), 0);
  EXPECT_FALSE(result.ids.empty());
  EXPECT_EQ(session.stats().prefills, 1);
}

TEST(CyberVGolden, NeedsAVideo) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  pipeline::Pipeline p =
      pipeline::Pipeline::from_json(R"({"controller": {"type": "cyberv"}})", "test");
  p.bind(pipeline::MethodContext(*t.model, t.processor.get()));
  model::ProcessorRequest text;
  text.prompt = "Hi";
  const auto processed = t.processor->process(text);
  generate::Session session(*t.model, &p);
  session.prefill(processed.inputs);
  pipeline::ControllerRequest request;
  request.session = &session;
  request.config = answer_config(t);
  request.request = &text;
  EXPECT_THROW(p.controller()->run(request), InputError);
}

}  // namespace
}  // namespace glimpse::methods::feedback
