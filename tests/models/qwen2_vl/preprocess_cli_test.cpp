// `glimpse preprocess`: outputs against the fixtures, and one-line errors for bad input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/video/encoder.h"
#include "test_util.h"

namespace glimpse {
namespace {

std::string fixture(const std::string& rel) {
  return test::fixtures_dir() + "/" + rel;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A model folder with just the two files preprocess reads.
std::string make_model_dir(const test::TempDir& dir, const std::string& model_type) {
  std::filesystem::create_directories(dir.path() / "model");
  write_text(dir.file("model/config.json"), R"({"model_type": ")" + model_type + R"("})");
  write_text(dir.file("model/preprocessor_config.json"),
             R"({"min_pixels": 3136, "max_pixels": 100352, "patch_size": 14,
                 "temporal_patch_size": 2, "merge_size": 2})");
  return dir.file("model");
}

// Exit code of a handled error, and exactly one line of output that names `needle`.
void expect_one_line_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.signal, 0) << r.out;
  EXPECT_GT(r.exit_code, 0) << r.out;
  EXPECT_LT(r.exit_code, 128) << r.out;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "more than one line:\n" << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

TEST(PreprocessCliTest, BadInputGivesOneLineErrors) {
  test::TempDir dir;
  const std::string model = make_model_dir(dir, "qwen2_vl");
  const std::string out = dir.file("out.safetensors");
  write_text(dir.file("garbage.png"), "not an image at all");
  write_text(dir.file("garbage.mp4"), "not a video at all");
  std::vector<std::uint8_t> png_head = {0x89, 'P', 'N',  'G', '\r', '\n', 0x1A, '\n', 0,    0,
                                        0,    13,  'I',  'H', 'D',  'R',  0,    0,    0x10, 0,
                                        0,    0,   0x10, 0,   8,    2,    0,    0,    0};
  {
    std::ofstream f(dir.file("truncated.png"), std::ios::binary);
    f.write(reinterpret_cast<const char*>(png_head.data()),
            static_cast<std::streamsize>(png_head.size()));
  }
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"preprocess", "--model", model, "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  expect_one_line_error(run({"--image", dir.file("missing.png")}), "missing.png");
  expect_one_line_error(run({"--image", dir.file("garbage.png")}), "garbage.png");
  expect_one_line_error(run({"--image", dir.file("truncated.png")}), "truncated.png");
  expect_one_line_error(run({"--frames", dir.file("garbage.png")}), "garbage.png");
  expect_one_line_error(run({"--video", dir.file("garbage.mp4")}), "garbage.mp4");
  expect_one_line_error(run({"--video", dir.file("missing.mp4")}), "missing.mp4");
  expect_one_line_error(run({}), "--image");
  expect_one_line_error(run({"--prompt-format", "raw"}), "--prompt");

  // A one-frame video cannot be sampled (qwen-vl-utils needs at least 2 frames).
  video::write_video(dir.file("one.mkv"), {vision::Image(64, 64)});
  expect_one_line_error(run({"--video", dir.file("one.mkv")}), "one.mkv");

  test::TempDir other;
  const std::string mystery = make_model_dir(other, "mystery");
  expect_one_line_error(test::run_cli({"preprocess", "--model", mystery, "--image",
                                       dir.file("garbage.png"), "--out", out}),
                        "mystery");
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(PreprocessCliTest, VideoFileGivesGridsAndSecondsPerGrid) {
  test::TempDir dir;
  const std::string model = make_model_dir(dir, "qwen2_5_vl");
  std::vector<vision::Image> frames;
  for (int i = 0; i < 20; ++i) {
    vision::Image f(64, 48);
    std::fill(f.rgb.begin(), f.rgb.end(), static_cast<std::uint8_t>(10 * i));
    frames.push_back(f);
  }
  video::EncodeOptions enc;
  enc.fps = 5.0;
  video::write_video(dir.file("clip.mkv"), frames, enc);
  const std::string out = dir.file("out.safetensors");
  const auto r = test::run_cli(
      {"preprocess", "--model", model, "--video", dir.file("clip.mkv"), "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto file = core::SafetensorsFile::open(out);
  // 4 s at 2 fps: 8 frames, sample_fps = 8 / 20 * 5 = 2, second_per_grid_ts = 2 / 2 = 1.
  const auto grid = core::load_tensor(file, "video_grid_thw");
  EXPECT_EQ(grid[0][0].item<std::int64_t>(), 4);
  const auto ts = core::load_tensor(file, "second_per_grid_ts");
  EXPECT_EQ(ts.scalar_type(), at::kFloat);
  EXPECT_EQ(ts[0].item<float>(), 1.0f);
  const auto pv = core::load_tensor(file, "pixel_values_videos");
  EXPECT_EQ(pv.size(0), at::prod(grid).item<std::int64_t>());
  EXPECT_EQ(pv.size(1), 1176);
  EXPECT_FALSE(file.find("pixel_values"));

  // --nframes instead of --fps.
  const auto r2 = test::run_cli({"preprocess", "--model", model, "--video", dir.file("clip.mkv"),
                                 "--nframes", "4", "--out", out});
  ASSERT_EQ(r2.exit_code, 0) << r2.out;
  const auto file2 = core::SafetensorsFile::open(out);
  EXPECT_EQ(core::load_tensor(file2, "video_grid_thw")[0][0].item<std::int64_t>(), 2);
  EXPECT_EQ(core::load_tensor(file2, "second_per_grid_ts")[0].item<float>(), 2.0f);  // 2 / 1 fps
}

class PreprocessCliGolden : public ::testing::TestWithParam<std::string> {};

// The CLI's file holds exactly the processor tensors of the fixture cases.
TEST_P(PreprocessCliGolden, MatchesFixtureInputs) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = GetParam();
  test::TempDir dir;
  const std::string images = fixture("images/");
  struct Case {
    std::string name;
    std::vector<std::string> args;
    std::vector<std::string> tensors;
  };
  std::vector<Case> cases = {
      {"two_images",
       {"--image", images + "image_a_64x48.png", "--image", images + "image_b_97x131.png"},
       {"pixel_values", "image_grid_thw"}},
      {"image_a", {"--image", images + "image_a_64x48.png"}, {"pixel_values", "image_grid_thw"}},
      {"batch_left_pad",
       {"--image", images + "image_b_97x131.png"},
       {"pixel_values", "image_grid_thw"}},
      {"video",
       {"--frames", images + "video_frame0_70x56.png", images + "video_frame1_70x56.png",
        images + "video_frame2_70x56.png", images + "video_frame3_70x56.png", "--fps", "2"},
       {"pixel_values_videos", "video_grid_thw"}},
  };
  if (model == "tiny-qwen2.5-vl") cases.back().tensors.push_back("second_per_grid_ts");
  for (const auto& c : cases) {
    const std::string out = dir.file(c.name + ".safetensors");
    std::vector<std::string> args = {"preprocess", "--model", fixture(model + "/model"), "--out",
                                     out};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = test::run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto got = core::SafetensorsFile::open(out);
    const auto want =
        core::SafetensorsFile::open(fixture(model + "/cases/" + c.name + ".inputs.safetensors"));
    EXPECT_EQ(got.tensors().size(), c.tensors.size()) << c.name;
    for (const auto& name : c.tensors) {
      const auto g = core::load_tensor(got, name);
      const auto w = core::load_tensor(want, name);
      EXPECT_EQ(g.scalar_type(), w.scalar_type()) << c.name << " " << name;
      ASSERT_EQ(g.sizes(), w.sizes()) << c.name << " " << name;
      EXPECT_TRUE(at::equal(g, w))
          << c.name << " " << name << ": max |diff| "
          << (g.to(at::kDouble) - w.to(at::kDouble)).abs().max().item<double>();
    }
  }
}

// With --prompt the file holds every processor tensor of the case (all but the model's
// position_ids / rope_deltas), exactly.
void expect_whole_inputs(const std::string& model, const std::string& name,
                         const std::string& out) {
  SCOPED_TRACE(model + "/" + name);
  const auto got = core::SafetensorsFile::open(out);
  const auto want =
      core::SafetensorsFile::open(fixture(model + "/cases/" + name + ".inputs.safetensors"));
  std::size_t compared = 0;
  for (const auto& info : want.tensors()) {
    const std::string& tensor = info.name;
    if (tensor == "position_ids" || tensor == "rope_deltas") continue;
    ++compared;
    ASSERT_TRUE(got.find(tensor)) << "missing " << tensor;
    const auto g = core::load_tensor(got, tensor);
    const auto w = core::load_tensor(want, tensor);
    EXPECT_EQ(g.scalar_type(), w.scalar_type()) << tensor;
    ASSERT_EQ(g.sizes(), w.sizes()) << tensor;
    EXPECT_TRUE(at::equal(g, w)) << tensor;
  }
  EXPECT_EQ(got.tensors().size(), compared);
}

TEST_P(PreprocessCliGolden, PromptWritesTheWholeInputs) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = GetParam();
  test::TempDir dir;
  const std::string images = fixture("images/");
  const std::string out = dir.file("out.safetensors");
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"preprocess", "--model", fixture(model + "/model"), "--out",
                                     out};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  auto r = run({"--prompt", "Describe this image.", "--image", images + "image_a_64x48.png"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_inputs(model, "image_a", out);

  r = run({"--prompt", "Hello! Please count to five."});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_inputs(model, "text_only", out);

  r = run({"--prompt", "What happens in this video?", "--frames", images + "video_frame0_70x56.png",
           images + "video_frame1_70x56.png", images + "video_frame2_70x56.png",
           images + "video_frame3_70x56.png", "--fps", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_inputs(model, "video", out);

  // Raw: the manifest's rendered prompt, placeholders included.
  const std::string raw =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
      "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>"
      "Compare the two pictures.<|im_end|>\n<|im_start|>assistant\n";
  r = run({"--prompt-format", "raw", "--prompt", raw, "--image", images + "image_a_64x48.png",
           "--image", images + "image_b_97x131.png"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_inputs(model, "two_images", out);

  // Errors stay one line.
  std::filesystem::remove(out);
  expect_one_line_error(run({"--prompt-format", "raw", "--prompt", "no placeholder", "--image",
                             images + "image_a_64x48.png"}),
                        "placeholder");
  expect_one_line_error(run({"--prompt-format", "json", "--prompt", "Hi"}), "--prompt-format");
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(PreprocessCliLlavaGolden, PromptWritesTheWholeInputs) {
  GLIMPSE_REQUIRE_FIXTURES();
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "sentencepiece needs RTLD_DEEPBIND, which AddressSanitizer forbids";
#endif
  test::TempDir dir;
  const std::string out = dir.file("out.safetensors");
  const auto r =
      test::run_cli({"preprocess", "--model", fixture("tiny-llava-1.5/model"), "--prompt",
                     "Compare them.", "--image", fixture("images/image_a_64x48.png"), "--image",
                     fixture("images/image_b_97x131.png"), "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  expect_whole_inputs("tiny-llava-1.5", "two_images", out);
}

INSTANTIATE_TEST_SUITE_P(Qwen, PreprocessCliGolden,
                         ::testing::Values("tiny-qwen2-vl", "tiny-qwen2.5-vl"),
                         [](const auto& info) {
                           return info.param == "tiny-qwen2-vl" ? "Qwen2VL" : "Qwen25VL";
                         });

}  // namespace
}  // namespace glimpse
