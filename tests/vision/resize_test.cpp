// Pillow-exact bicubic resampling: hand-computed cases and properties.
#include "glimpse/vision/resize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "glimpse/core/error.h"

namespace glimpse::vision {
namespace {

Image grey_row(const std::vector<int>& values) {
  Image img(static_cast<int>(values.size()), 1);
  for (std::size_t x = 0; x < values.size(); ++x) {
    for (int c = 0; c < 3; ++c) img.rgb[x * 3 + c] = static_cast<std::uint8_t>(values[x]);
  }
  return img;
}

std::vector<int> channel(const Image& img, int c) {
  std::vector<int> v;
  for (std::size_t i = c; i < img.rgb.size(); i += 3) v.push_back(img.rgb[i]);
  return v;
}

Image random_image(int w, int h, unsigned seed) {
  std::mt19937 rng(seed);
  Image img(w, h);
  for (auto& b : img.rgb) b = static_cast<std::uint8_t>(rng() & 0xFF);
  return img;
}

Image transpose(const Image& in) {
  Image out(in.height, in.width);
  for (int y = 0; y < in.height; ++y) {
    for (int x = 0; x < in.width; ++x) {
      for (int c = 0; c < 3; ++c) out.pixel(y, x)[c] = in.pixel(x, y)[c];
    }
  }
  return out;
}

// Straightforward floating-point version of the same filter (no fixed point): results may
// differ from Pillow's by one level where the fixed-point rounding tips over.
std::vector<double> reference_1d(const std::vector<double>& in, int out_size) {
  const double scale = static_cast<double>(in.size()) / out_size;
  const double fs = std::max(scale, 1.0);
  const double support = 2.0 * fs;
  auto cubic = [](double x) {
    x = std::fabs(x);
    if (x < 1) return (1.5 * x - 2.5) * x * x + 1;
    if (x < 2) return ((-0.5 * x + 2.5) * x - 4) * x + 2;
    return 0.0;
  };
  std::vector<double> out(out_size);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(center - support + 0.5));
    const int hi = std::min(static_cast<int>(in.size()), static_cast<int>(center + support + 0.5));
    double sum = 0, wsum = 0;
    for (int j = lo; j < hi; ++j) {
      const double w = cubic((j - center + 0.5) / fs);
      sum += w * in[j];
      wsum += w;
    }
    out[i] = std::clamp(std::floor(sum / wsum + 0.5), 0.0, 255.0);
  }
  return out;
}

TEST(ResizeTest, HandComputedUpscaleOfTwoPixels) {
  // 2 -> 4: taps 0.8671875 / -0.0703125 and 0.8671875 / 0.2265625, normalised:
  // [-0.0882 * 255 -> 0, 0.2071 * 255 = 52.8 -> 53, 0.7929 * 255 = 202.2 -> 202, 277.5 -> 255].
  const Image out = resize(grey_row({0, 255}), 4, 1);
  EXPECT_EQ(channel(out, 0), (std::vector<int>{0, 53, 202, 255}));
  EXPECT_EQ(channel(out, 1), channel(out, 0));
  EXPECT_EQ(channel(out, 2), channel(out, 0));
}

TEST(ResizeTest, HandComputedDownscaleWidensTheSupport) {
  // 4 -> 2: scale 2 doubles the support to 4 input pixels, all four inputs contribute:
  // out0 = (0.8672 * 0 + 0.8672 * 100 + 0.2266 * 200 - 0.0703 * 255) / 1.8906 = 60.35 -> 60,
  // out1 = (-0.0703 * 0 + 0.2266 * 100 + 0.8672 * 200 + 0.8672 * 255) / 1.8906 = 220.68 -> 221.
  const Image out = resize(grey_row({0, 100, 200, 255}), 2, 1);
  EXPECT_EQ(channel(out, 0), (std::vector<int>{60, 221}));
}

TEST(ResizeTest, SameSizeReturnsTheInput) {
  const Image img = random_image(17, 9, 1);
  EXPECT_EQ(resize(img, 17, 9), img);
}

TEST(ResizeTest, ConstantImagesStayConstant) {
  for (int v : {0, 1, 127, 254, 255}) {
    Image img(13, 7);
    std::fill(img.rgb.begin(), img.rgb.end(), static_cast<std::uint8_t>(v));
    for (auto [w, h] : {std::pair{5, 3}, {40, 21}, {13, 30}, {1, 1}, {100, 2}}) {
      const Image out = resize(img, w, h);
      ASSERT_EQ(out.width, w);
      ASSERT_EQ(out.height, h);
      for (auto b : out.rgb) ASSERT_EQ(b, v) << w << "x" << h;
    }
  }
}

TEST(ResizeTest, VerticalPassMatchesHorizontalPassOnTheTranspose) {
  // With one axis unchanged only one pass runs, so the two passes must agree. (With both axes
  // changing they do not commute: the intermediate image is rounded to 8 bits.)
  const Image img = random_image(11, 23, 2);
  for (int h : {1, 5, 22, 24, 40}) {
    EXPECT_EQ(resize(img, 11, h), transpose(resize(transpose(img), h, 11))) << "height " << h;
  }
  for (int w : {1, 3, 10, 12, 30}) {
    EXPECT_EQ(resize(img, w, 23), transpose(resize(transpose(img), 23, w))) << "width " << w;
  }
}

TEST(ResizeTest, WithinOneLevelOfAFloatingPointReference) {
  const Image img = random_image(37, 1, 3);
  std::vector<double> in;
  for (int x = 0; x < 37; ++x) in.push_back(img.pixel(x, 0)[1]);
  for (int w : {1, 2, 7, 20, 36, 38, 50, 111}) {
    const auto want = reference_1d(in, w);
    const auto got = channel(resize(img, w, 1), 1);
    for (int i = 0; i < w; ++i) EXPECT_NEAR(got[i], want[i], 1.0) << "width " << w << " at " << i;
  }
}

TEST(ResizeTest, BadArgumentsThrow) {
  EXPECT_THROW(resize(Image(), 4, 4), InputError);
  EXPECT_THROW(resize(random_image(4, 4, 4), 0, 4), InputError);
  EXPECT_THROW(resize(random_image(4, 4, 4), 4, -1), InputError);
}

TEST(ResizeTest, PilFilterNumbers) {
  EXPECT_EQ(resample_filter_from_pil(3), ResampleFilter::Bicubic);
  EXPECT_EQ(resample_filter_from_pil(2), ResampleFilter::Bilinear);
  EXPECT_EQ(resample_filter_from_pil(1), ResampleFilter::Lanczos);
  EXPECT_FALSE(resample_filter_from_pil(0).has_value());  // NEAREST
  EXPECT_FALSE(resample_filter_from_pil(7).has_value());
}

TEST(ResizeTest, OtherFiltersAreNormalised) {
  Image img(9, 9);
  std::fill(img.rgb.begin(), img.rgb.end(), 77);
  for (auto f : {ResampleFilter::Box, ResampleFilter::Bilinear, ResampleFilter::Hamming,
                 ResampleFilter::Lanczos}) {
    const Image out = resize(img, 4, 13, f);
    for (auto b : out.rgb) ASSERT_EQ(b, 77);
  }
}

}  // namespace
}  // namespace glimpse::vision
