// glimpse inspect on the fixture models, as README.md shows it, and its one-line errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/vision/image_io.h"
#include "test_util.h"

namespace glimpse::test {
namespace {

std::string model_dir(const std::string& name) {
  return fixtures_dir() + "/" + name + "/model";
}
std::string image(const std::string& name) {
  return fixtures_dir() + "/images/" + name;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

TEST(InspectCliGolden, QwenImageWritesHeatmapsNumbersLensAndHiddenStates) {
  GLIMPSE_REQUIRE_FIXTURES();
  TempDir dir;
  const auto r = run_cli({"inspect", "--model", model_dir("tiny-qwen2-vl"), "--image",
                          image("image_a_64x48.png"), "--prompt", "Describe this image.",
                          "--layers", "0,2", "--heads", "1", "--logit-lens", "last",
                          "--save-hidden", "--out", dir.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto index = read_json(dir.file("index.json"));
  EXPECT_EQ(index.at("layers"), nlohmann::json({0, 2}));
  EXPECT_EQ(index.at("heads"), nlohmann::json({1}));
  EXPECT_EQ(index.at("prompt_tokens"), 53);  // the fixture's image_a prompt
  EXPECT_EQ(index.at("query").at("tokens")[0].at("index"), 52);
  const auto& media = index.at("media");
  ASSERT_EQ(media.size(), 1u);
  EXPECT_EQ(media[0].at("grid"), nlohmann::json({1, 3, 3}));
  EXPECT_EQ(media[0].at("model_input_size"), nlohmann::json({84, 84}));
  // Per layer: head 1, the head mean; and the overall mean.
  EXPECT_EQ(media[0].at("files").size(), 5u);
  for (const auto& f : media[0].at("files")) {
    const auto png = vision::load_image(dir.file(f.get<std::string>()));
    EXPECT_EQ(png.width, 64);
    EXPECT_EQ(png.height, 48);
  }
  const auto maps = core::SafetensorsFile::open(dir.file("maps.safetensors"));
  const at::Tensor m = core::load_tensor(maps, "image0");
  EXPECT_EQ(m.sizes(), (at::IntArrayRef{2, 1, 1, 3, 3}));
  EXPECT_GT(m.sum().item<float>(), 0.0f);
  EXPECT_LT(m[0].sum().item<float>(), 1.0f + 1e-5f);
  const auto lens = read_json(dir.file("logit_lens.json"));
  EXPECT_EQ(lens.at("position"), 52);
  EXPECT_EQ(lens.at("layers").size(), 3u);
  // The last layer's top token is the model's greedy choice (the fixture's first generated id).
  EXPECT_EQ(lens.at("layers")[2].at("top")[0].at("id"), 964);
  const auto hidden = core::SafetensorsFile::open(dir.file("hidden_states.safetensors"));
  EXPECT_NO_THROW(core::load_tensor(hidden, "hidden_states.1"));
  EXPECT_NO_THROW(core::load_tensor(hidden, "hidden_states.3"));
}

TEST(InspectCliGolden, VideoFramesTwoImagesGeneratedAndLlava) {
  GLIMPSE_REQUIRE_FIXTURES();
  {
    TempDir dir;
    std::vector<std::string> args{"inspect", "--model", model_dir("tiny-qwen2-vl"), "--frames"};
    for (int i = 0; i < 4; ++i) {
      args.push_back(image("video_frame" + std::to_string(i) + "_70x56.png"));
    }
    for (const char* a : {"--prompt", "What moves?", "--png", "mean", "--query", "generated",
                          "--max-new-tokens", "3", "--numbers", "json", "--out"}) {
      args.push_back(a);
    }
    args.push_back(dir.path().string());
    const auto r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto index = read_json(dir.file("index.json"));
    const auto& v = index.at("media").at(0);
    EXPECT_EQ(v.at("name"), "video0");
    EXPECT_EQ(v.at("grid"), nlohmann::json({2, 3, 3}));
    EXPECT_EQ(v.at("frames"), nlohmann::json({0, 2}));
    EXPECT_TRUE(std::filesystem::exists(dir.file("video0/t1/mean.png")));
    EXPECT_FALSE(std::filesystem::exists(dir.file("video0/t1/layer0_head0.png")));
    EXPECT_EQ(index.at("query").at("tokens").size(), 2u);
    EXPECT_EQ(index.at("generated").at("ids").size(), 3u);
    EXPECT_TRUE(read_json(dir.file("maps.json")).contains("video0"));
  }
  {
    TempDir dir;
    const auto r = run_cli({"inspect", "--model", model_dir("tiny-qwen2.5-vl"), "--image",
                            image("image_a_64x48.png"), "--image", image("image_b_97x131.png"),
                            "--prompt", "Compare the two pictures.", "--query", "span:60-64",
                            "--out", dir.path().string()});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto index = read_json(dir.file("index.json"));
    ASSERT_EQ(index.at("media").size(), 2u);
    EXPECT_EQ(index.at("media")[1].at("grid"), nlohmann::json({1, 4, 2}));
    EXPECT_EQ(index.at("query").at("tokens").size(), 5u);
    // Queries after both images see both (earlier queries could not: attention is causal).
    EXPECT_GT(index.at("media")[0].at("mass")[0].get<double>(), 0.0);
    EXPECT_GT(index.at("media")[1].at("mass")[0].get<double>(), 0.0);
    const auto png = vision::load_image(dir.file("image1/mean.png"));
    EXPECT_EQ(png.width, 97);
    EXPECT_EQ(png.height, 131);
  }
  {
    TempDir dir;
    const auto r = run_cli({"inspect", "--model", model_dir("tiny-llava-1.5"), "--image",
                            image("image_a_64x48.png"), "--prompt", "Describe this image.", "--out",
                            dir.path().string()});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto index = read_json(dir.file("index.json"));
    EXPECT_EQ(index.at("media")[0].at("grid"), nlohmann::json({1, 4, 4}));
    // The centre crop of the 64 x 48 picture: x from 9 * 64 / 74 to 65 * 64 / 74.
    EXPECT_NEAR(index.at("media")[0].at("grid_placement")[0].get<double>(), 9 * 64.0 / 74, 1e-9);
  }
}

TEST(InspectCliGolden, BadFlagsAreOneLineErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  TempDir dir;
  const std::vector<std::string> base{"inspect",
                                      "--model",
                                      model_dir("tiny-qwen2-vl"),
                                      "--image",
                                      image("image_a_64x48.png"),
                                      "--prompt",
                                      "Describe",
                                      "--out",
                                      dir.path().string()};
  const auto fails = [&](std::vector<std::string> extra, const std::string& message) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
    // One line: the error and nothing else.
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;
  };
  fails({"--layers", "3"}, "--layers: layer 3 out of range (the model has 3 layers: 0..2)");
  fails({"--heads", "0,4"}, "--heads: head 4 out of range (the model has 4 heads: 0..3)");
  fails({"--query", "middle"}, "--query: expected last, token:I, span:A-B");
  fails({"--query", "span:9-2"}, "--query: expected");
  fails({"--query", "token:500"}, "--query: token:500 is outside the prompt");
  fails({"--logit-lens", "x"}, "--logit-lens: expected last or a prompt position");
  fails({"--png", "some"}, "--png: expected all, mean or none");
  fails({"--layers", "a"}, "--layers");
}

}  // namespace
}  // namespace glimpse::test
