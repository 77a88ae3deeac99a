// Pillow's separable resampling (src/libImaging/Resample.c, unchanged from Pillow 4 to 11 for the
// 8-bit path): precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc,
// ImagingResampleVertical_8bpc and ImagingResampleInner. Floating-point expressions are written
// in Pillow's order, so coefficients and results are bit-identical.
#include "glimpse/vision/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "glimpse/core/error.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF  // a fused multiply-add would change the coefficients' rounding
#endif

namespace glimpse::vision {
namespace {

constexpr double kPi = 3.14159265358979323846;  // M_PI

double box_filter(double x) {
  return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
}

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * kPi;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // float constants, as in Pillow
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * kPi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  return (-3.0 <= x && x < 3.0) ? sinc_filter(x) * sinc_filter(x / 3) : 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

Filter filter_for(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::Box:
      return {box_filter, 0.5};
    case ResampleFilter::Bilinear:
      return {bilinear_filter, 1.0};
    case ResampleFilter::Hamming:
      return {hamming_filter, 1.0};
    case ResampleFilter::Bicubic:
      return {bicubic_filter, 2.0};
    case ResampleFilter::Lanczos:
      return {lanczos_filter, 3.0};
  }
  return {bicubic_filter, 2.0};
}

// 8 bits for the result, 2 for overflow and sign: Resample.c PRECISION_BITS.
constexpr int kPrecisionBits = 32 - 8 - 2;

inline std::uint8_t clip8(std::int32_t v) {
  const std::int32_t s = v >> kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<std::uint8_t>(s < 0 ? 0 : (s > 255 ? 255 : s));
}

// Fixed-point taps for one axis: output i reads `count[i]` inputs from `first[i]` with weights
// k[i * ksize ...].
struct Taps {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<std::int32_t> k;
};

// Resample.c: precompute_coeffs (box = [0, in_size)) followed by normalize_coeffs_8bpc.
Taps precompute_taps(int in_size, int out_size, const Filter& filter) {
  // Pillow's box is float[4]; in1 - in0 is computed in float before the division.
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.k.assign(static_cast<std::size_t>(out_size) * t.ksize, 0);
  std::vector<double> w(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax > t.ksize) xmax = t.ksize;  // cannot happen (2 * support + 1 taps at most)
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = filter.fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    std::int32_t* k = &t.k[static_cast<std::size_t>(xx) * t.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? static_cast<std::int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<std::int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    t.first[xx] = xmin;
    t.count[xx] = xmax < 0 ? 0 : xmax;
  }
  return t;
}

// ImagingResampleHorizontal_8bpc for 3 bands: rows [row0, row0 + out.height) of `in`.
void resample_horizontal(const Image& in, int row0, const Taps& t, Image& out) {
  for (int yy = 0; yy < out.height; ++yy) {
    const std::uint8_t* src = in.row(yy + row0);
    std::uint8_t* dst = out.row(yy);
    for (int xx = 0; xx < out.width; ++xx) {
      const std::int32_t* k = &t.k[static_cast<std::size_t>(xx) * t.ksize];
      const std::uint8_t* p = src + static_cast<std::size_t>(t.first[xx]) * 3;
      std::int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0, n = t.count[xx]; x < n; ++x, p += 3) {
        s0 += p[0] * k[x];
        s1 += p[1] * k[x];
        s2 += p[2] * k[x];
      }
      dst[xx * 3 + 0] = clip8(s0);
      dst[xx * 3 + 1] = clip8(s1);
      dst[xx * 3 + 2] = clip8(s2);
    }
  }
}

// ImagingResampleVertical_8bpc for 3 bands; `t.first` is relative to the first row of `in`.
// Integer sums do not depend on the order of the taps, so this walks input rows whole.
void resample_vertical(const Image& in, const Taps& t, Image& out) {
  const std::size_t n = out.row_bytes();
  std::vector<std::int32_t> acc(n);
  for (int yy = 0; yy < out.height; ++yy) {
    const std::int32_t* k = &t.k[static_cast<std::size_t>(yy) * t.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < t.count[yy]; ++y) {
      const std::uint8_t* src = in.row(t.first[yy] + y);
      const std::int32_t w = k[y];
      for (std::size_t i = 0; i < n; ++i) acc[i] += src[i] * w;
    }
    std::uint8_t* dst = out.row(yy);
    for (std::size_t i = 0; i < n; ++i) dst[i] = clip8(acc[i]);
  }
}

}  // namespace

std::optional<ResampleFilter> resample_filter_from_pil(int value) {
  switch (value) {
    case 1:
      return ResampleFilter::Lanczos;
    case 2:
      return ResampleFilter::Bilinear;
    case 3:
      return ResampleFilter::Bicubic;
    case 4:
      return ResampleFilter::Box;
    case 5:
      return ResampleFilter::Hamming;
    default:
      return std::nullopt;
  }
}

Image resize(const Image& image, int width, int height, ResampleFilter filter_kind) {
  if (image.empty() || image.rgb.size() != image.row_bytes() * image.height) {
    throw InputError("resize: the input image is empty or its buffer has the wrong size");
  }
  if (width <= 0 || height <= 0) {
    throw InputError("resize: target size must be positive, got " + std::to_string(width) + "x" +
                     std::to_string(height));
  }
  if (width == image.width && height == image.height) return image;  // PIL returns a copy

  const Filter filter = filter_for(filter_kind);
  const bool need_horizontal = width != image.width;
  const bool need_vertical = height != image.height;
  Taps vert = precompute_taps(image.height, height, filter);
  // Rows the vertical pass reads: the horizontal pass only produces those.
  const int row_first = vert.first[0];
  const int row_last = vert.first[height - 1] + vert.count[height - 1];

  if (!need_horizontal) {
    Image out(width, height);
    resample_vertical(image, vert, out);
    return out;
  }
  const Taps horiz = precompute_taps(image.width, width, filter);
  Image temp(width, row_last - row_first);
  resample_horizontal(image, row_first, horiz, temp);
  if (!need_vertical) return temp;
  for (auto& f : vert.first) f -= row_first;
  Image out(width, height);
  resample_vertical(temp, vert, out);
  return out;
}

}  // namespace glimpse::vision
