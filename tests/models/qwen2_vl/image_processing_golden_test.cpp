// The Qwen2-VL image processor against transformers 4.50 outputs in the fixtures
// (cases/*.inputs.safetensors of tiny-qwen2-vl and tiny-qwen2.5-vl).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/models/qwen2_vl/image_processing.h"
#include "glimpse/vision/image_io.h"
#include "test_util.h"

namespace glimpse::models::qwen2_vl {
namespace {

std::string fixture(const std::string& rel) {
  return test::fixtures_dir() + "/" + rel;
}

vision::Image image(const std::string& name) {
  return vision::load_image(fixture("images/" + name));
}

std::vector<vision::Image> video_frames() {
  std::vector<vision::Image> frames;
  for (int i = 0; i < 4; ++i) {
    frames.push_back(image("video_frame" + std::to_string(i) + "_70x56.png"));
  }
  return frames;
}

ImageProcessor processor(const std::string& model) {
  return ImageProcessor::from_pretrained(fixture(model + "/model"));
}

at::Tensor expected(const std::string& model, const std::string& name, const std::string& tensor) {
  const auto file =
      core::SafetensorsFile::open(fixture(model + "/cases/" + name + ".inputs.safetensors"));
  return core::load_tensor(file, tensor);
}

// Exact equality is the goal; the worst difference is printed for the record.
void expect_pixels(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), at::kFloat) << what;
  const double diff = (got - want).abs().max().item<double>();
  std::printf("[ golden ] %s: max |diff| = %.9g\n", what.c_str(), diff);
  EXPECT_EQ(diff, 0.0) << what;
}

void expect_grid(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(at::equal(got, want.to(at::kLong))) << what << ": " << got << " vs " << want;
}

class ImageProcessingGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageProcessingGolden, ImageA) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto out = processor(GetParam()).preprocess_images({image("image_a_64x48.png")});
  expect_pixels(out.pixel_values, expected(GetParam(), "image_a", "pixel_values"),
                GetParam() + " image_a");
  expect_grid(out.grid_thw, expected(GetParam(), "image_a", "image_grid_thw"), "image_a grid");
}

TEST_P(ImageProcessingGolden, TwoImages) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto out =
      processor(GetParam())
          .preprocess_images({image("image_a_64x48.png"), image("image_b_97x131.png")});
  expect_pixels(out.pixel_values, expected(GetParam(), "two_images", "pixel_values"),
                GetParam() + " two_images");
  expect_grid(out.grid_thw, expected(GetParam(), "two_images", "image_grid_thw"),
              "two_images grid");
}

TEST_P(ImageProcessingGolden, BatchLeftPadImageB) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto out = processor(GetParam()).preprocess_images({image("image_b_97x131.png")});
  expect_pixels(out.pixel_values, expected(GetParam(), "batch_left_pad", "pixel_values"),
                GetParam() + " batch_left_pad (image_b)");
  expect_grid(out.grid_thw, expected(GetParam(), "batch_left_pad", "image_grid_thw"),
              "image_b grid");
}

TEST_P(ImageProcessingGolden, VideoFrames) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto out = processor(GetParam()).preprocess_videos({video_frames()});
  expect_pixels(out.pixel_values, expected(GetParam(), "video", "pixel_values_videos"),
                GetParam() + " video");
  expect_grid(out.grid_thw, expected(GetParam(), "video", "video_grid_thw"), "video grid");
  if (GetParam() == "tiny-qwen2.5-vl") {
    const auto ts = second_per_grid_ts({2.0}, processor(GetParam()).config().temporal_patch_size);
    const auto want = expected(GetParam(), "video", "second_per_grid_ts");
    ASSERT_EQ(want.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(ts, want)) << ts << " vs " << want;
  }
}

INSTANTIATE_TEST_SUITE_P(Qwen, ImageProcessingGolden,
                         ::testing::Values("tiny-qwen2-vl", "tiny-qwen2.5-vl"),
                         [](const auto& info) {
                           return info.param == "tiny-qwen2-vl" ? "Qwen2VL" : "Qwen25VL";
                         });

}  // namespace
}  // namespace glimpse::models::qwen2_vl
