// Qwen2-VL and Qwen2.5-VL against transformers 4.50 on the tiny fixtures: vision tower, positions,
// logits, hidden states, attention probabilities and greedy generation, every case.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "models/qwen2_vl/modeling.h"
#include "tensor_testing.h"
#include "test_util.h"

namespace glimpse::models::qwen2_vl {
namespace {
namespace fs = std::filesystem;

struct Case {
  std::string model;  // fixture folder
  std::string name;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = info.param.model + "_" + info.param.name;
  for (auto& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

using test::all_close;

class QwenForwardGolden : public ::testing::TestWithParam<Case> {
 protected:
  static std::map<std::string, std::unique_ptr<Qwen2VLForConditionalGeneration>>& models() {
    static std::map<std::string, std::unique_ptr<Qwen2VLForConditionalGeneration>> m;
    return m;
  }
  Qwen2VLForConditionalGeneration& model() {
    auto& m = models()[GetParam().model];
    if (!m) {
      m = std::make_unique<Qwen2VLForConditionalGeneration>(dir() + "/model", model::LoadOptions{});
    }
    return *m;
  }
  std::string dir() const { return test::fixtures_dir() + "/" + GetParam().model; }
  std::string file(const std::string& kind) const {
    return dir() + "/cases/" + GetParam().name + "." + kind + ".safetensors";
  }
  model::ForwardInputs inputs() const { return model::read_forward_inputs(file("inputs")); }
};

TEST_P(QwenForwardGolden, VisionTowerMatches) {
  GLIMPSE_REQUIRE_FIXTURES();
  if (!fs::exists(file("vision"))) GTEST_SKIP() << "no vision file for this case";
  const auto in = inputs();
  const auto ref = core::SafetensorsFile::open(file("vision"));
  for (const std::string kind : {"image", "video"}) {
    if (!ref.find(kind + ".embeds")) continue;
    const at::Tensor& pixels = kind == "image" ? in.pixel_values : in.pixel_values_videos;
    const at::Tensor& grid = kind == "image" ? in.image_grid_thw : in.video_grid_thw;
    VisionTrace trace;
    const at::Tensor embeds = model().encode_vision(pixels, grid, &trace);
    EXPECT_TRUE(all_close(trace.patch_embed, core::load_tensor(ref, kind + ".patch_embed"), 1e-4,
                          1e-4, kind + ".patch_embed"));
    for (std::size_t i = 0; i < trace.blocks.size(); ++i) {
      const std::string name = kind + ".block" + std::to_string(i);
      EXPECT_TRUE(all_close(trace.blocks[i], core::load_tensor(ref, name), 1e-4, 1e-4, name));
    }
    EXPECT_TRUE(
        all_close(embeds, core::load_tensor(ref, kind + ".embeds"), 1e-4, 1e-4, kind + ".embeds"));
  }
}

TEST_P(QwenForwardGolden, ForwardMatches) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto in = inputs();
  model::ForwardOptions options;
  options.output_hidden_states = true;
  options.output_attentions = true;
  const auto out = model().forward(in, options);
  const auto ref = core::SafetensorsFile::open(file("forward"));
  const auto ins = core::SafetensorsFile::open(file("inputs"));
  EXPECT_TRUE(at::equal(out.position_ids, core::load_tensor(ins, "position_ids")));
  EXPECT_TRUE(at::equal(out.rope_deltas, core::load_tensor(ins, "rope_deltas")));
  EXPECT_TRUE(all_close(out.logits, core::load_tensor(ref, "logits"), 1e-4, 1e-4, "logits"));
  ASSERT_EQ(out.hidden_states.size(), 4u);
  for (std::size_t i = 0; i < out.hidden_states.size(); ++i) {
    const std::string name = "hidden_states." + std::to_string(i);
    EXPECT_TRUE(all_close(out.hidden_states[i], core::load_tensor(ref, name), 1e-4, 1e-4, name));
  }
  EXPECT_TRUE(all_close(out.last_layer_output_prenorm,
                        core::load_tensor(ref, "last_layer_output_prenorm"), 1e-4, 1e-4,
                        "prenorm"));
  ASSERT_EQ(out.attentions.size(), 3u);
  for (std::size_t i = 0; i < out.attentions.size(); ++i) {
    const std::string name = "attentions." + std::to_string(i);
    EXPECT_TRUE(all_close(out.attentions[i], core::load_tensor(ref, name), 1e-5, 0, name));
  }
}

TEST_P(QwenForwardGolden, GreedyGenerationMatches) {
  GLIMPSE_REQUIRE_FIXTURES();
  generate::GenerationConfig config = generate::GenerationConfig::from_checkpoint(dir() + "/model");
  config.max_new_tokens = 8;
  generate::GenerateOptions options;
  options.keep_step_logits = true;
  const auto result = generate::generate(model(), inputs(), config, options);
  const auto ref = core::SafetensorsFile::open(file("generate"));
  EXPECT_TRUE(at::equal(result.new_tokens, core::load_tensor(ref, "new_tokens")))
      << result.new_tokens << "\nexpected\n"
      << core::load_tensor(ref, "new_tokens");
  EXPECT_TRUE(at::equal(result.sequences, core::load_tensor(ref, "sequences")));
  const at::Tensor step_logits = at::stack(result.step_logits, 1);
  EXPECT_TRUE(
      all_close(step_logits, core::load_tensor(ref, "step_logits"), 1e-4, 1e-4, "step_logits"));
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string model : {"tiny-qwen2-vl", "tiny-qwen2.5-vl"}) {
    for (const std::string name :
         {"image_a", "two_images", "text_only", "video", "batch_left_pad"}) {
      cases.push_back({model, name});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, QwenForwardGolden, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace glimpse::models::qwen2_vl
