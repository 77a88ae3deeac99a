// Qwen2-VL image processor: smart_resize, patch order and configuration (no fixtures).
#include "glimpse/models/qwen2_vl/image_processing.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"

namespace glimpse::models::qwen2_vl {
namespace {

TEST(SmartResizeTest, FixtureCasesIncludingBankersRounding) {
  // transformers 4.50 with min_pixels 4704 and max_pixels 9408 (the tiny fixtures).
  EXPECT_EQ(smart_resize(48, 64, 28, 4704, 9408), (HeightWidth{84, 84}));    // image_a, upscale
  EXPECT_EQ(smart_resize(131, 97, 28, 4704, 9408), (HeightWidth{112, 56}));  // image_b, downscale
  // video frames: round(70 / 28) = round(2.5) = 2 (half to even), 56x56 < 4704, then upscale.
  EXPECT_EQ(smart_resize(56, 70, 28, 4704, 9408), (HeightWidth{84, 84}));
}

TEST(SmartResizeTest, RoundsHalfToEven) {
  const std::int64_t big = 1'000'000'000;
  EXPECT_EQ(smart_resize(70, 70, 28, 0, big), (HeightWidth{56, 56}));      // 2.5 -> 2
  EXPECT_EQ(smart_resize(98, 42, 28, 0, big), (HeightWidth{112, 56}));     // 3.5 -> 4, 1.5 -> 2
  EXPECT_EQ(smart_resize(126, 182, 28, 0, big), (HeightWidth{112, 168}));  // 4.5 -> 4, 6.5 -> 6
  EXPECT_EQ(smart_resize(1080, 1920, 28, 3136, 12845056), (HeightWidth{1092, 1932}));
}

TEST(SmartResizeTest, ScalesIntoThePixelRange) {
  const auto big = smart_resize(4000, 3000, 28, 3136, 1003520);
  EXPECT_LE(big.height * big.width, 1003520);
  EXPECT_EQ(big.height % 28, 0);
  EXPECT_EQ(big.width % 28, 0);
  EXPECT_EQ(big, (HeightWidth{1148, 840}));  // floor(side / beta / 28) * 28, beta = 3.458
  const auto small = smart_resize(30, 30, 28, 3136, 1003520);
  EXPECT_EQ(small, (HeightWidth{56, 56}));
}

TEST(SmartResizeTest, RejectsTinyAndExtremeImages) {
  EXPECT_THROW(smart_resize(27, 500), InputError);
  EXPECT_THROW(smart_resize(500, 10), InputError);
  EXPECT_THROW(smart_resize(28, 28 * 201), InputError);  // aspect ratio 201 > 200
  EXPECT_NO_THROW(smart_resize(28, 28 * 200, 28, 56 * 56, 28 * 28 * 1280));
}

// A 56x56 image whose red channel is x, green is y and blue is 7, without rescale or normalise,
// so patch values show where they came from.
vision::Image coordinate_image(int w, int h) {
  vision::Image img(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      img.pixel(x, y)[0] = static_cast<std::uint8_t>(x);
      img.pixel(x, y)[1] = static_cast<std::uint8_t>(y);
      img.pixel(x, y)[2] = 7;
    }
  }
  return img;
}

TEST(ImageProcessorTest, PatchesComeInMergeWindowOrder) {
  ImageProcessorConfig cfg;
  cfg.do_resize = false;
  cfg.do_rescale = false;
  cfg.do_normalize = false;
  const ImageProcessor proc(cfg);
  const auto out = proc.process({coordinate_image(56, 84)});  // 6 x 4 patches of 14
  EXPECT_EQ(out.grid, (std::array<std::int64_t, 3>{1, 6, 4}));
  ASSERT_EQ(out.pixel_values.sizes(), (at::IntArrayRef{24, 1176}));
  auto v = out.pixel_values.accessor<float, 2>();
  // Column (c, t, py, px) = c * 392 + t * 196 + py * 14 + px.
  auto at = [&](int row, int c, int t, int py, int px) {
    return v[row][c * 392 + t * 196 + py * 14 + px];
  };
  // Row order: merge block (bh, bw) row-major over a 3 x 2 block grid, then (ih, iw) inside.
  struct Case {
    int row, x0, y0;
  };
  for (Case k : {Case{0, 0, 0}, Case{1, 14, 0}, Case{2, 0, 14}, Case{3, 14, 14}, Case{4, 28, 0},
                 Case{5, 42, 0}, Case{6, 28, 14}, Case{8, 0, 28}, Case{23, 42, 70}}) {
    for (int t = 0; t < 2; ++t) {  // one image: the frame is repeated in time
      EXPECT_EQ(at(k.row, 0, t, 3, 5), k.x0 + 5) << "row " << k.row;
      EXPECT_EQ(at(k.row, 1, t, 3, 5), k.y0 + 3) << "row " << k.row;
      EXPECT_EQ(at(k.row, 2, t, 3, 5), 7) << "row " << k.row;
    }
  }
}

TEST(ImageProcessorTest, FramesPadToTheTemporalPatch) {
  ImageProcessorConfig cfg;
  cfg.do_resize = false;
  cfg.do_rescale = false;
  cfg.do_normalize = false;
  const ImageProcessor proc(cfg);
  std::vector<vision::Image> frames;
  for (int i = 0; i < 3; ++i) {
    vision::Image f(28, 28);
    std::fill(f.rgb.begin(), f.rgb.end(), static_cast<std::uint8_t>(10 * (i + 1)));
    frames.push_back(f);
  }
  const auto out = proc.process(frames);
  EXPECT_EQ(out.grid, (std::array<std::int64_t, 3>{2, 2, 2}));
  auto v = out.pixel_values.accessor<float, 2>();
  EXPECT_EQ(v[0][0], 10);    // t-block 0, frame 0
  EXPECT_EQ(v[0][196], 20);  // frame 1
  EXPECT_EQ(v[4][0], 30);    // t-block 1, frame 2
  EXPECT_EQ(v[4][196], 30);  // padding repeats the last frame
}

TEST(ImageProcessorTest, NormalisationFollowsNumpyFloat32) {
  const ImageProcessor proc;  // class defaults: rescale 1/255, CLIP mean and std
  vision::Image img(56, 56);
  for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i % 256);
  const auto out = proc.process({img});
  const auto& c = proc.config();
  auto v = out.pixel_values.accessor<float, 2>();
  // Pixel (0, 0): bytes 0, 1, 2.
  for (int ch = 0; ch < 3; ++ch) {
    const float x = static_cast<float>(static_cast<double>(ch) * c.rescale_factor);
    const float want =
        (x - static_cast<float>(c.image_mean[ch])) / static_cast<float>(c.image_std[ch]);
    EXPECT_EQ(v[0][ch * 392], want);
  }
}

TEST(ImageProcessorTest, ConfigFromPreprocessorJson) {
  const auto cfg = ImageProcessorConfig::from_config(core::Config::parse(
      R"({"min_pixels": 100, "max_pixels": 2000, "size": {"shortest_edge": 1, "longest_edge": 2},
          "patch_size": 16, "merge_size": 2, "temporal_patch_size": 1, "image_mean": 0.5,
          "image_std": [0.1, 0.2, 0.3], "resample": 2, "do_normalize": false})",
      "preprocessor_config.json"));
  EXPECT_EQ(cfg.min_pixels, 100);  // min_pixels / max_pixels win over size
  EXPECT_EQ(cfg.max_pixels, 2000);
  EXPECT_EQ(cfg.patch_size, 16);
  EXPECT_EQ(cfg.temporal_patch_size, 1);
  EXPECT_EQ(cfg.image_mean, (std::array<double, 3>{0.5, 0.5, 0.5}));
  EXPECT_EQ(cfg.image_std, (std::array<double, 3>{0.1, 0.2, 0.3}));
  EXPECT_EQ(cfg.resample, vision::ResampleFilter::Bilinear);
  EXPECT_FALSE(cfg.do_normalize);

  const auto sized = ImageProcessorConfig::from_config(core::Config::parse(
      R"({"size": {"shortest_edge": 3136, "longest_edge": 12845056}})", "p.json"));
  EXPECT_EQ(sized.min_pixels, 3136);
  EXPECT_EQ(sized.max_pixels, 12845056);

  EXPECT_THROW(ImageProcessorConfig::from_config(core::Config::parse(R"({"resample": 0})", "p")),
               ConfigError);
  EXPECT_THROW(ImageProcessorConfig::from_config(core::Config::parse(R"({"patch_size": 0})", "p")),
               ConfigError);
  EXPECT_THROW(
      ImageProcessorConfig::from_config(core::Config::parse(R"({"image_mean": [1, 2]})", "p")),
      ConfigError);
}

TEST(ImageProcessorTest, RejectsBadInput) {
  const ImageProcessor proc;
  EXPECT_THROW(proc.process({}), InputError);
  EXPECT_THROW(proc.process({vision::Image()}), InputError);
  EXPECT_THROW(proc.process({vision::Image(10, 100)}), InputError);  // side below 28
  ImageProcessorConfig cfg;
  cfg.do_resize = false;
  EXPECT_THROW(ImageProcessor(cfg).process({vision::Image(30, 28)}), InputError);
}

TEST(ImageProcessorTest, SecondPerGridTs) {
  const auto t = second_per_grid_ts({2.0, 0.5, 3.0}, 2);
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_EQ(t[0].item<float>(), 1.0f);
  EXPECT_EQ(t[1].item<float>(), 4.0f);
  EXPECT_EQ(t[2].item<float>(), static_cast<float>(2.0 / 3.0));
  EXPECT_THROW(second_per_grid_ts({0.0}, 2), InputError);
}

}  // namespace
}  // namespace glimpse::models::qwen2_vl
