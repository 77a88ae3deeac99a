// The text path of a VLM equals the text-only model built from the same weights: Qwen2-VL's
// language model as Qwen2ForCausalLM, LLaVA's as LlamaForCausalLM.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

// Copies the language-model tensors of `vlm_dir` (renamed from `from` to `to` prefixes) and
// writes `config` next to them.
void make_text_checkpoint(const std::string& vlm_dir, const std::string& out_dir,
                          const std::vector<std::pair<std::string, std::string>>& renames,
                          const nlohmann::json& config) {
  const auto ckpt = core::Checkpoint::open(vlm_dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& name : ckpt.names()) {
    for (const auto& [from, to] : renames) {
      if (name.rfind(from, 0) == 0) {
        tensors.emplace_back(to + name.substr(from.size()), core::load_tensor(ckpt, name));
      }
    }
  }
  core::save_tensors(out_dir + "/model.safetensors", tensors);
  std::ofstream(out_dir + "/config.json") << config.dump(2);
}

at::Tensor text_ids(const std::string& model) {
  const auto f = core::SafetensorsFile::open(test::fixtures_dir() + "/" + model +
                                             "/cases/text_only.inputs.safetensors");
  return core::load_tensor(f, "input_ids");
}

void expect_same_text_path(const std::string& vlm_dir, const std::string& text_dir,
                           const at::Tensor& ids) {
  auto vlm = load_model(vlm_dir);
  auto lm = load_model(text_dir);
  ForwardInputs in;
  in.input_ids = ids;
  const at::Tensor a = vlm->forward(in, {}).logits;
  const at::Tensor b = lm->forward(in, {}).logits;
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-6)) << (a - b).abs().max().item<double>();
  generate::GenerationConfig g;
  g.max_new_tokens = 6;
  EXPECT_TRUE(at::equal(generate::generate(*vlm, in, g).new_tokens,
                        generate::generate(*lm, in, g).new_tokens));
}

TEST(TextOnlyGolden, Qwen2VLTextPathEqualsQwen2ForCausalLM) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string vlm = test::fixtures_dir() + "/tiny-qwen2-vl/model";
  auto config = nlohmann::json::parse(std::ifstream(vlm + "/config.json"));
  config["architectures"] = {"Qwen2ForCausalLM"};
  config["model_type"] = "qwen2";
  config.erase("vision_config");
  config.erase("rope_scaling");  // plain 1-D RoPE: M-RoPE with equal streams reduces to it
  test::TempDir dir;
  make_text_checkpoint(vlm, dir.path().string(), {{"model.", "model."}}, config);
  expect_same_text_path(vlm, dir.path().string(), text_ids("tiny-qwen2-vl"));
}

TEST(TextOnlyGolden, LlavaTextPathEqualsLlamaForCausalLM) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string vlm = test::fixtures_dir() + "/tiny-llava-1.5/model";
  auto config = nlohmann::json::parse(std::ifstream(vlm + "/config.json")).at("text_config");
  config["architectures"] = {"LlamaForCausalLM"};
  test::TempDir dir;
  make_text_checkpoint(
      vlm, dir.path().string(),
      {{"language_model.model.", "model."}, {"language_model.lm_head.", "lm_head."}}, config);
  expect_same_text_path(vlm, dir.path().string(), text_ids("tiny-llava-1.5"));
}

TEST(LlavaConfigGolden, BadVisionSettingsAreConfigErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string src = test::fixtures_dir() + "/tiny-llava-1.5/model";
  const auto base = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  test::TempDir dir;
  std::filesystem::copy_file(src + "/model.safetensors", dir.file("model.safetensors"));
  auto expect_config_error = [&](nlohmann::json config, const std::string& needle) {
    std::ofstream(dir.file("config.json")) << config.dump();
    try {
      load_model(dir.path().string());
      ADD_FAILURE() << "accepted " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto c = base;
  c["vision_feature_layer"] = 7;
  expect_config_error(c, "vision_feature_layer");
  c = base;
  c["vision_feature_layer"] = -5;
  expect_config_error(c, "vision_feature_layer");
  c = base;
  c["vision_feature_select_strategy"] = "cls_only";
  expect_config_error(c, "vision_feature_select_strategy");
  // A list of layers concatenates features: the projector input must then be twice as wide.
  c = base;
  c["vision_feature_layer"] = {-2, -1};
  std::ofstream(dir.file("config.json")) << c.dump();
  EXPECT_THROW(load_model(dir.path().string()), FormatError);
}

TEST(LlavaInputGolden, FeatureCountMismatchIsAnInputError) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string m = test::fixtures_dir() + "/tiny-llava-1.5";
  auto model = load_model(m + "/model");
  const auto f = core::SafetensorsFile::open(m + "/cases/two_images.inputs.safetensors");
  ForwardInputs in;
  in.input_ids = core::load_tensor(f, "input_ids");
  in.pixel_values = core::load_tensor(f, "pixel_values").narrow(0, 0, 1);  // one image, 32 tokens
  try {
    model->forward(in, {});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tokens: 32, features 16"), std::string::npos) << e.what();
  }
  in.pixel_values = core::load_tensor(f, "pixel_values").narrow(2, 0, 28);
  EXPECT_THROW(model->forward(in, {}), InputError);
}

}  // namespace
}  // namespace glimpse::model
