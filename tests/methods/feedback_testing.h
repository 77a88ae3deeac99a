#pragma once

// Helpers of the feedback-loop methods' tests: bad pipeline specs, the tiny Qwen2-VL, the first
// method's report entry.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "test_util.h"

namespace glimpse::test {

// Each spec must be a ConfigError whose message names its key.
inline void expect_config_errors(const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [json, key] : cases) {
    try {
      pipeline::Pipeline::from_json(json, "test");
      ADD_FAILURE() << "accepted: " << json;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

// The fixtures' tiny Qwen2-VL, loaded once.
inline model::Model& tiny_qwen2_vl() {
  static auto m = model::load_model(fixtures_dir() + "/tiny-qwen2-vl/model");
  return *m;
}

// The report entry of the pipeline's first method.
inline nlohmann::json first_entry(const pipeline::Pipeline& p) {
  return nlohmann::json::parse(p.report().to_json()).at("methods").at(0);
}

struct GreedyRun {
  nlohmann::json entry;     // the first method's report
  std::int64_t tokens = 0;  // generated
};

// Greedy decoding of the tiny Qwen2-VL's image_a case with the pipeline `spec` gives the ids it
// gives without one (a zero-strength setting); returns the run's report entry.
inline GreedyRun expect_greedy_unchanged(const std::string& spec, std::int64_t new_tokens = 6) {
  auto& m = tiny_qwen2_vl();
  const auto inputs = load_case("tiny-qwen2-vl", "image_a");
  generate::GenerationConfig config;
  config.max_new_tokens = new_tokens;
  const auto plain = generate::generate(m, inputs, config);
  pipeline::Pipeline p = pipeline::Pipeline::from_json(spec, "test");
  p.bind(pipeline::MethodContext(m));
  generate::GenerateOptions options;
  options.hooks = &p;
  const auto got = generate::generate(m, inputs, config, options);
  EXPECT_TRUE(at::equal(got.new_tokens, plain.new_tokens)) << spec;
  return {first_entry(p), got.new_tokens.size(1)};
}

}  // namespace glimpse::test
