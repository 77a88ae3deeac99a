// Qwen2-VL: bad inputs get InputError naming the tensor; bf16 agrees with fp32 on the fixtures.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::model {
namespace {
namespace fs = std::filesystem;

std::string fixture(const std::string& rel) {
  return test::fixtures_dir() + "/" + rel;
}

ForwardInputs load_case(const std::string& model, const std::string& name) {
  return read_forward_inputs(fixture(model + "/cases/" + name + ".inputs.safetensors"));
}

std::string input_error(Model& m, const ForwardInputs& in) {
  try {
    m.forward(in, {});
  } catch (const InputError& e) {
    return e.what();
  }
  return "no InputError";
}

TEST(QwenInputErrorsGolden, BadInputsNameTheTensor) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load_model(fixture("tiny-qwen2-vl/model"));
  const ForwardInputs good = load_case("tiny-qwen2-vl", "image_a");

  ForwardInputs in = good;  // one placeholder token too many
  in.input_ids = good.input_ids.clone();
  in.input_ids.index_put_({0, 0}, 1012);
  EXPECT_NE(input_error(*m, in).find("tokens do not match: tokens: 10, features 9"),
            std::string::npos);

  in = good;  // a grid not divisible by the merge size
  in.image_grid_thw = at::tensor({1, 6, 6}, at::kLong).view({1, 3});
  in.image_grid_thw.index_put_({0, 1}, 9);
  in.image_grid_thw.index_put_({0, 2}, 4);
  EXPECT_NE(input_error(*m, in).find("divisible by spatial_merge_size"), std::string::npos);

  in = good;  // the grid and the pixel rows disagree
  in.pixel_values = good.pixel_values.narrow(0, 0, 32);
  EXPECT_NE(input_error(*m, in).find("describes"), std::string::npos);

  in = good;  // misshapen pixels
  in.pixel_values = good.pixel_values.narrow(1, 0, 100);
  EXPECT_NE(input_error(*m, in).find("pixel_values: expected shape [patches, 1176]"),
            std::string::npos);

  in = good;  // image tokens without pixels
  in.pixel_values = at::Tensor();
  EXPECT_NE(input_error(*m, in).find("pixel_values is missing"), std::string::npos);

  in = good;  // out-of-vocabulary id
  in.input_ids = good.input_ids.clone();
  in.input_ids.index_put_({0, 1}, 5000);
  EXPECT_NE(input_error(*m, in).find("outside the vocabulary"), std::string::npos);

  in = good;
  in.attention_mask = good.attention_mask.narrow(1, 0, 3);
  EXPECT_NE(input_error(*m, in).find("attention_mask: shape"), std::string::npos);

  in = good;
  in.input_ids = good.input_ids.to(at::kFloat);
  EXPECT_NE(input_error(*m, in).find("input_ids: expected an integer tensor"), std::string::npos);

  in = good;
  in.input_ids = good.input_ids.view({-1});
  EXPECT_NE(input_error(*m, in).find("input_ids: expected 2 dimensions"), std::string::npos);
}

// Hostile media inputs are rejected before anything is sized from them: a huge or overflowing
// grid (get_rope_index walks every cell) and non-finite values end in an InputError naming the
// tensor, at once.
TEST(QwenInputErrorsGolden, HostileGridsAndValuesAreRejectedBeforeUse) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load_model(fixture("tiny-qwen2-vl/model"));
  const ForwardInputs good = load_case("tiny-qwen2-vl", "image_a");
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  auto grid = [&](std::int64_t t, std::int64_t h, std::int64_t w) {
    return at::tensor(std::vector<std::int64_t>{t, h, w}, i64).view({1, 3});
  };
  const std::int64_t big = std::int64_t{1} << 31, huge = std::int64_t{1} << 40;
  for (const auto& [g, what] : {std::make_pair(grid(1, big, big), "describes more patches"),
                                std::make_pair(grid(huge, huge, huge), "describes more patches"),
                                std::make_pair(grid(1, -2, 4), "must be positive"),
                                std::make_pair(grid(0, 2, 2), "must be positive")}) {
    for (const bool video : {false, true}) {
      ForwardInputs in = good;
      (video ? in.video_grid_thw : in.image_grid_thw) = g;
      const std::string e = input_error(*m, in);
      EXPECT_NE(e.find(video ? "video_grid_thw row 0" : "image_grid_thw row 0"), std::string::npos)
          << e;
      EXPECT_NE(e.find(what), std::string::npos) << e;
    }
  }
  ForwardInputs in = good;
  in.image_grid_thw = good.image_grid_thw.to(at::kFloat);
  EXPECT_NE(input_error(*m, in).find("image_grid_thw: expected an integer tensor"),
            std::string::npos);

  in = good;  // NaN or infinite pixels
  in.pixel_values = good.pixel_values.clone();
  in.pixel_values.index_put_({3, 7}, std::nan(""));
  EXPECT_NE(input_error(*m, in).find("pixel_values: expected finite values"), std::string::npos);
  in.pixel_values.index_put_({3, 7}, INFINITY);
  EXPECT_NE(input_error(*m, in).find("pixel_values: expected finite values"), std::string::npos);
  in.pixel_values = good.pixel_values.to(at::kInt);
  EXPECT_NE(input_error(*m, in).find("pixel_values: expected floating-point"), std::string::npos);

  in = good;  // precomputed features with a NaN
  in.image_embeds = m->embed_media(good).image_embeds.clone();
  in.image_embeds.index_put_({0, 0}, std::nan(""));
  in.pixel_values = at::Tensor();
  EXPECT_NE(input_error(*m, in).find("image_embeds: expected finite values"), std::string::npos);

  auto llava = load_model(fixture("tiny-llava-1.5/model"));
  in = load_case("tiny-llava-1.5", "image_a");
  in.pixel_values = in.pixel_values.clone();
  in.pixel_values.index_put_({0, 0, 0, 0}, std::nan(""));
  EXPECT_NE(input_error(*llava, in).find("pixel_values: expected finite values"),
            std::string::npos);
}

TEST(QwenInputErrorsGolden, BadCheckpointsAreConfigOrFormatErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  test::TempDir dir;
  const fs::path src = fixture("tiny-qwen2-vl/model");
  fs::copy_file(src / "model.safetensors", dir.path() / "model.safetensors");
  std::ifstream in(src / "config.json");
  const std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write_config = [&](const std::string& text) {
    std::ofstream(dir.file("config.json")) << text;
  };
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = config;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  write_config(replace("\"hidden_size\": 64,", ""));
  EXPECT_THROW(load_model(dir.path().string()), ConfigError);
  write_config(replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": \"3\""));
  EXPECT_THROW(load_model(dir.path().string()), ConfigError);
  write_config(replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4"));
  EXPECT_THROW(load_model(dir.path().string()), FormatError);  // layer 3 has no tensors
  write_config(replace("\"intermediate_size\": 128", "\"intermediate_size\": 100"));
  EXPECT_THROW(load_model(dir.path().string()), FormatError);  // shape mismatch
  {
    std::string s = replace("\"Qwen2VLForConditionalGeneration\"", "\"MysteryForCausalLM\"");
    s.replace(s.find("\"model_type\": \"qwen2_vl\""), 24, "\"model_type\": \"mystery\"");
    write_config(s);
  }
  EXPECT_THROW(load_model(dir.path().string()), UnsupportedError);
  write_config(replace("\"mrope_section\": [", "\"mrope_section\": [1, "));
  EXPECT_THROW(load_model(dir.path().string()), ConfigError);
  EXPECT_THROW(load_model(dir.file("missing")), InputError);
}

// bf16 follows the reference casting rules. Measured on the tiny fixtures (|logits| <= 4.1): the
// logits stay within 0.075 of fp32, and the argmax differs only at positions whose fp32 top-two
// gap is below 0.026 (97-100% of positions agree). Asserted: within 0.1, and the argmax agrees
// wherever the fp32 gap exceeds 0.05.
TEST(QwenBf16Golden, AgreesWithFp32) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string model : {"tiny-qwen2-vl", "tiny-qwen2.5-vl"}) {
    auto f32 = load_model(fixture(model + "/model"));
    LoadOptions opts;
    opts.dtype = at::kBFloat16;
    auto b16 = load_model(fixture(model + "/model"), opts);
    for (const std::string name :
         {"image_a", "two_images", "text_only", "video", "batch_left_pad"}) {
      const ForwardInputs in = load_case(model, name);
      const at::Tensor a = f32->forward(in, {}).logits;
      const at::Tensor b = b16->forward(in, {}).logits.to(at::kFloat);
      EXPECT_EQ(b16->forward(in, {}).logits.scalar_type(), at::kBFloat16);
      // Only rows that are not padding carry meaning.
      const at::Tensor keep = in.attention_mask.to(at::kBool);
      const double worst = (a - b).abs().amax(-1).masked_select(keep).max().item<double>();
      RecordProperty(model + "_" + name + "_max_logit_diff", std::to_string(worst));
      EXPECT_LT(worst, 0.1) << model << " " << name;
      const at::Tensor agree = a.argmax(-1).eq(b.argmax(-1)).masked_select(keep);
      const double frac = agree.to(at::kFloat).mean().item<double>();
      // Gap between the top two fp32 logits where the argmax flips.
      const auto top2 = std::get<0>(at::topk(a, 2, -1));
      const at::Tensor gap = (top2.select(-1, 0) - top2.select(-1, 1)).masked_select(keep);
      const at::Tensor flipped = gap.masked_select(agree.logical_not());
      std::printf("%s %s: max |logit diff| %.4f, argmax agreement %.3f, largest gap flipped %.4f\n",
                  model.c_str(), name.c_str(), worst, frac,
                  flipped.numel() ? flipped.max().item<double>() : 0.0);
      EXPECT_TRUE(flipped.numel() == 0 || flipped.max().item<double>() < 0.05)
          << model << " " << name;
    }
  }
}

}  // namespace
}  // namespace glimpse::model
