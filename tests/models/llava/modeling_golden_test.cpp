// LLaVA-1.5 against transformers 4.50 on the tiny fixture: CLIP hidden states and attentions,
// image features, logits, hidden states, attentions and greedy generation, every case.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "models/llava/modeling.h"
#include "tensor_testing.h"
#include "test_util.h"

namespace glimpse::models::llava {
namespace {

using test::all_close;

class LlavaGolden : public ::testing::TestWithParam<std::string> {
 protected:
  static LlavaForConditionalGeneration& model() {
    static std::unique_ptr<model::Model> m =
        LlavaForConditionalGeneration::load(dir() + "/model", model::LoadOptions{});
    return static_cast<LlavaForConditionalGeneration&>(*m);
  }
  static std::string dir() { return test::fixtures_dir() + "/tiny-llava-1.5"; }
  std::string file(const std::string& kind) const {
    return dir() + "/cases/" + GetParam() + "." + kind + ".safetensors";
  }
  model::ForwardInputs inputs() const { return model::read_forward_inputs(file("inputs")); }
};

TEST_P(LlavaGolden, VisionTowerAndFeaturesMatch) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto in = inputs();
  if (!in.pixel_values.defined()) GTEST_SKIP() << "text only";
  const auto ref = core::SafetensorsFile::open(file("vision"));
  const ImageFeatures f = model().image_features(in.pixel_values, /*output_attentions=*/true);
  for (std::size_t i = 0; i < f.vision.hidden_states.size(); ++i) {
    const std::string name = "clip.hidden_states." + std::to_string(i);
    EXPECT_TRUE(
        all_close(f.vision.hidden_states[i], core::load_tensor(ref, name), 1e-4, 1e-4, name));
  }
  for (std::size_t i = 0; i < f.vision.attentions.size(); ++i) {
    const std::string name = "clip.attentions." + std::to_string(i);
    EXPECT_TRUE(all_close(f.vision.attentions[i], core::load_tensor(ref, name), 1e-5, 0, name));
  }
  EXPECT_TRUE(all_close(f.vision.pooler_output, core::load_tensor(ref, "clip.pooler_output"), 1e-4,
                        1e-4, "pooler_output"));
  EXPECT_TRUE(all_close(f.features, core::load_tensor(ref, "image_features"), 1e-4, 1e-4,
                        "image_features"));
}

TEST_P(LlavaGolden, ForwardMatches) {
  GLIMPSE_REQUIRE_FIXTURES();
  model::ForwardOptions options;
  options.output_hidden_states = options.output_attentions = true;
  const auto out = model().forward(inputs(), options);
  const auto ref = core::SafetensorsFile::open(file("forward"));
  EXPECT_TRUE(all_close(out.logits, core::load_tensor(ref, "logits"), 1e-4, 1e-4, "logits"));
  ASSERT_EQ(out.hidden_states.size(), 4u);
  for (std::size_t i = 0; i < out.hidden_states.size(); ++i) {
    const std::string name = "hidden_states." + std::to_string(i);
    EXPECT_TRUE(all_close(out.hidden_states[i], core::load_tensor(ref, name), 1e-4, 1e-4, name));
  }
  for (std::size_t i = 0; i < out.attentions.size(); ++i) {
    const std::string name = "attentions." + std::to_string(i);
    EXPECT_TRUE(all_close(out.attentions[i], core::load_tensor(ref, name), 1e-5, 0, name));
  }
}

TEST_P(LlavaGolden, GreedyGenerationMatches) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto config = generate::GenerationConfig::from_checkpoint(dir() + "/model");
  config.max_new_tokens = 8;
  generate::GenerateOptions options;
  options.keep_step_logits = true;
  const auto result = generate::generate(model(), inputs(), config, options);
  const auto ref = core::SafetensorsFile::open(file("generate"));
  EXPECT_TRUE(at::equal(result.new_tokens, core::load_tensor(ref, "new_tokens")))
      << result.new_tokens;
  EXPECT_TRUE(all_close(at::stack(result.step_logits, 1), core::load_tensor(ref, "step_logits"),
                        1e-4, 1e-4, "step_logits"));
}

INSTANTIATE_TEST_SUITE_P(Cases, LlavaGolden,
                         ::testing::Values("image_a", "image_b", "two_images", "text_only"));

}  // namespace
}  // namespace glimpse::models::llava
