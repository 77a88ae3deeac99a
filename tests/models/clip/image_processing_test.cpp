// CLIPImageProcessor (LLaVA-1.5): sizes, crops, pad-to-square, and the fixture pixel_values.
#include "glimpse/models/clip/image_processing.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/vision/image_io.h"
#include "test_util.h"

namespace glimpse::models::clip {
namespace {

vision::Image gradient(int w, int h) {
  vision::Image img(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      auto* p = img.pixel(x, y);
      p[0] = static_cast<std::uint8_t>(x);
      p[1] = static_cast<std::uint8_t>(y);
      p[2] = 7;
    }
  }
  return img;
}

TEST(ClipImageProcessingTest, ShortestEdgeTruncatesTheLongSide) {
  EXPECT_EQ(shortest_edge_size(48, 64, 56), (std::array<std::int64_t, 2>{56, 74}));   // 74.67
  EXPECT_EQ(shortest_edge_size(131, 97, 56), (std::array<std::int64_t, 2>{75, 56}));  // 75.63
  EXPECT_EQ(shortest_edge_size(336, 336, 336), (std::array<std::int64_t, 2>{336, 336}));
}

TEST(ClipImageProcessingTest, CenterCropTakesTheMiddleAndPadsSmallImages) {
  const auto img = gradient(10, 7);
  const auto c = center_crop(img, 3, 4);  // top = (7-3)//2 = 2, left = (10-4)//2 = 3
  ASSERT_EQ(c.width, 4);
  ASSERT_EQ(c.height, 3);
  EXPECT_EQ(c.pixel(0, 0)[0], 3);
  EXPECT_EQ(c.pixel(0, 0)[1], 2);
  const auto padded = center_crop(gradient(2, 2), 4, 5);  // centred at rows 1..2, cols 2..3
  EXPECT_EQ(padded.pixel(0, 0)[2], 0);
  EXPECT_EQ(padded.pixel(2, 1)[2], 7);
  EXPECT_EQ(padded.pixel(2, 1)[0], 0);
  EXPECT_EQ(padded.pixel(3, 2)[0], 1);
  EXPECT_EQ(padded.pixel(4, 3)[2], 0);
}

TEST(ClipImageProcessingTest, ExpandToSquareCentresOnTheMeanColour) {
  const auto sq = expand_to_square(gradient(4, 2), {122, 116, 104});
  ASSERT_EQ(sq.width, 4);
  ASSERT_EQ(sq.height, 4);
  EXPECT_EQ(sq.pixel(0, 0)[0], 122);
  EXPECT_EQ(sq.pixel(3, 1)[0], 3);  // row 0 of the image lands at y = (4 - 2) / 2 = 1
  EXPECT_EQ(sq.pixel(3, 3)[1], 116);
}

TEST(ClipImageProcessingTest, ConfigAndBadInput) {
  const auto c = ImageProcessorConfig::from_config(core::Config::parse(
      R"({"size": {"shortest_edge": 56}, "crop_size": {"height": 56, "width": 48},
          "image_aspect_ratio": "pad"})",
      "preprocessor_config.json"));
  EXPECT_EQ(c.shortest_edge, 56);
  EXPECT_EQ(c.crop_width, 48);
  EXPECT_EQ(c.pad_mode, PadMode::MeanColor);
  EXPECT_THROW(ImageProcessorConfig::from_config(
                   core::Config::parse(R"({"size": {"height": 5}})", "p.json")),
               ConfigError);
  EXPECT_THROW(ImageProcessorConfig::from_config(
                   core::Config::parse(R"({"crop_size": {"height": 0, "width": 4}})", "p.json")),
               ConfigError);
  ImageProcessor p(c);
  EXPECT_THROW(p.preprocess({}), InputError);
  EXPECT_THROW(p.preprocess({vision::Image()}), InputError);
  const at::Tensor t = p.preprocess({gradient(30, 20)});
  EXPECT_EQ(t.sizes(), (at::IntArrayRef{1, 3, 56, 48}));
}

TEST(ClipImageProcessingGolden, ReproducesTheFixturePixelValues) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string root = test::fixtures_dir();
  const auto p = ImageProcessor::from_pretrained(root + "/tiny-llava-1.5/model");
  EXPECT_EQ(p.config().pad_mode, PadMode::None);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"image_a", {"image_a_64x48.png"}},
      {"image_b", {"image_b_97x131.png"}},
      {"two_images", {"image_a_64x48.png", "image_b_97x131.png"}},
  };
  for (const auto& [name, files] : cases) {
    std::vector<vision::Image> images;
    for (const auto& f : files) images.push_back(vision::load_image(root + "/images/" + f));
    const at::Tensor got = p.preprocess(images);
    const auto ref =
        core::SafetensorsFile::open(root + "/tiny-llava-1.5/cases/" + name + ".inputs.safetensors");
    const at::Tensor want = core::load_tensor(ref, "pixel_values");
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    const double worst = (got - want).abs().max().item<double>();
    EXPECT_EQ(worst, 0.0) << name << ": max |diff| " << worst;
  }
}

}  // namespace
}  // namespace glimpse::models::clip

namespace glimpse::models::clip {
namespace {

TEST(ClipPreprocessCliGolden, LlavaPreprocessWritesTheFixturePixelValues) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string root = test::fixtures_dir();
  test::TempDir dir;
  const auto r = test::run_cli({"preprocess", "--model", root + "/tiny-llava-1.5/model", "--image",
                                root + "/images/image_a_64x48.png", "--image",
                                root + "/images/image_b_97x131.png", "--out", dir.file("p.st")});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto got = core::SafetensorsFile::open(dir.file("p.st"));
  const auto ref =
      core::SafetensorsFile::open(root + "/tiny-llava-1.5/cases/two_images.inputs.safetensors");
  EXPECT_TRUE(
      at::equal(core::load_tensor(got, "pixel_values"), core::load_tensor(ref, "pixel_values")));
  const auto bad =
      test::run_cli({"preprocess", "--model", root + "/tiny-llava-1.5/model", "--frames",
                     root + "/images/video_frame0_70x56.png", "--out", dir.file("v.st")});
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
}

}  // namespace
}  // namespace glimpse::models::clip
