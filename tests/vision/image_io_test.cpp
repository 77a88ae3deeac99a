// Image decoding: formats, RGB conversion as PIL's convert("RGB"), EXIF orientation as
// ImageOps.exif_transpose, and bad input.
#include "glimpse/vision/image_io.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <random>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/vision/image_header.h"
#include "test_util.h"

namespace glimpse::vision {
namespace {

std::vector<std::uint8_t> encode(const cv::Mat& m, const std::string& ext,
                                 const std::vector<int>& params = {}) {
  std::vector<std::uint8_t> buf;
  EXPECT_TRUE(cv::imencode(ext, m, buf, params));
  return buf;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

cv::Mat random_bgr(int w, int h, unsigned seed) {
  cv::Mat m(h, w, CV_8UC3);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w * 3; ++x) m.ptr<std::uint8_t>(y)[x] = static_cast<std::uint8_t>(rng());
  }
  return m;
}

// Our RGB image equals OpenCV's BGR Mat with channels swapped.
void expect_same(const Image& img, const cv::Mat& bgr) {
  ASSERT_EQ(img.width, bgr.cols);
  ASSERT_EQ(img.height, bgr.rows);
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      const auto* p = bgr.ptr<std::uint8_t>(y) + x * 3;
      const auto* q = img.pixel(x, y);
      ASSERT_EQ(q[0], p[2]);
      ASSERT_EQ(q[1], p[1]);
      ASSERT_EQ(q[2], p[0]);
    }
  }
}

Image decode(const std::vector<std::uint8_t>& bytes) {
  return decode_image(bytes.data(), bytes.size(), "test");
}

TEST(ImageDecodeTest, LosslessFormatsRoundTrip) {
  const cv::Mat bgr = random_bgr(23, 17, 1);
  expect_same(decode(encode(bgr, ".png")), bgr);
  expect_same(decode(encode(bgr, ".bmp")), bgr);
  expect_same(decode(encode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})), bgr);  // lossless
}

TEST(ImageDecodeTest, JpegMatchesLibjpeg) {
  const cv::Mat bgr = random_bgr(32, 24, 2);
  const auto bytes = encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  const cv::Mat ref = cv::imdecode(bytes, cv::IMREAD_COLOR);
  expect_same(decode(bytes), ref);
}

TEST(ImageDecodeTest, GreyIsReplicated) {
  cv::Mat grey(3, 4, CV_8UC1);
  for (int i = 0; i < 12; ++i) grey.data[i] = static_cast<std::uint8_t>(i * 20);
  const Image img = decode(encode(grey, ".png"));
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(img.rgb[i * 3 + 0], i * 20);
    EXPECT_EQ(img.rgb[i * 3 + 1], i * 20);
    EXPECT_EQ(img.rgb[i * 3 + 2], i * 20);
  }
}

TEST(ImageDecodeTest, AlphaIsDroppedNotComposited) {
  // PIL's convert("RGB") (transformers' convert_to_rgb) keeps the colour of transparent pixels.
  cv::Mat bgra(1, 2, CV_8UC4);
  bgra.at<cv::Vec4b>(0, 0) = {30, 20, 10, 0};
  bgra.at<cv::Vec4b>(0, 1) = {60, 50, 40, 128};
  const Image img = decode(encode(bgra, ".png"));
  EXPECT_EQ(img.rgb, (std::vector<std::uint8_t>{10, 20, 30, 40, 50, 60}));
}

TEST(ImageDecodeTest, SixteenBitPngsFollowPil) {
  cv::Mat rgb16(1, 1, CV_16UC3);
  rgb16.at<cv::Vec3w>(0, 0) = {0x1234, 0xABCD, 0x00FF};  // B, G, R
  EXPECT_EQ(decode(encode(rgb16, ".png")).rgb, (std::vector<std::uint8_t>{0x00, 0xAB, 0x12}));
  // Grey 16-bit opens as PIL mode "I"; convert("RGB") clips to 0..255.
  cv::Mat grey16(1, 2, CV_16UC1);
  grey16.at<std::uint16_t>(0, 0) = 100;
  grey16.at<std::uint16_t>(0, 1) = 300;
  EXPECT_EQ(decode(encode(grey16, ".png")).rgb,
            (std::vector<std::uint8_t>{100, 100, 100, 255, 255, 255}));
}

// APP1 "Exif" segment: a TIFF header and IFD0 with one entry, Orientation (0x0112) as a SHORT.
std::vector<std::uint8_t> exif_app1(int orientation, bool big_endian) {
  std::vector<std::uint8_t> tiff;
  if (big_endian) {
    tiff = {'M',  'M',  0, 0x2A, 0, 0, 0, 8, 0, 1,
            0x01, 0x12, 0, 3,    0, 0, 0, 1, 0, static_cast<std::uint8_t>(orientation),
            0,    0,    0, 0,    0, 0};
  } else {
    tiff = {'I',
            'I',
            0x2A,
            0,
            8,
            0,
            0,
            0,
            1,
            0,
            0x12,
            0x01,
            3,
            0,
            1,
            0,
            0,
            0,
            static_cast<std::uint8_t>(orientation),
            0,
            0,
            0,
            0,
            0,
            0,
            0};
  }
  const std::size_t length = 2 + 6 + tiff.size();
  std::vector<std::uint8_t> seg = {0xFF,
                                   0xE1,
                                   static_cast<std::uint8_t>(length >> 8),
                                   static_cast<std::uint8_t>(length & 0xFF),
                                   'E',
                                   'x',
                                   'i',
                                   'f',
                                   0,
                                   0};
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  return seg;
}

// A JPEG with `segment` inserted right after SOI.
std::vector<std::uint8_t> with_segment(std::vector<std::uint8_t> jpeg,
                                       const std::vector<std::uint8_t>& segment) {
  jpeg.insert(jpeg.begin() + 2, segment.begin(), segment.end());
  return jpeg;
}

Image decode_unrotated(const std::vector<std::uint8_t>& bytes) {
  DecodeOptions options;
  options.apply_exif_orientation = false;
  return decode_image(bytes.data(), bytes.size(), "test", options);
}

// PIL.ImageOps.exif_transpose, written out pixel by pixel: the source of output pixel (x, y).
Image transposed(const Image& in, int orientation) {
  const bool swap = orientation >= 5;
  Image out(swap ? in.height : in.width, swap ? in.width : in.height);
  const int w = in.width;
  const int h = in.height;
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      if (orientation == 2) sx = w - 1 - x;                  // mirror
      if (orientation == 3) sx = w - 1 - x, sy = h - 1 - y;  // rotate 180
      if (orientation == 6) sx = y, sy = h - 1 - x;          // 90 clockwise
      if (orientation == 8) sx = w - 1 - y, sy = x;          // 90 counter-clockwise
      std::copy_n(in.pixel(sx, sy), 3, out.pixel(x, y));
    }
  }
  return out;
}

TEST(ImageDecodeTest, JpegMatchesOpenCvForBaselineProgressiveAndGrey) {
  // OpenCV decodes with libjpeg's defaults too (JDCT_ISLOW, fancy upsampling), as PIL does.
  const cv::Mat bgr = random_bgr(37, 29, 11);
  for (const auto& params : std::vector<std::vector<int>>{
           {cv::IMWRITE_JPEG_QUALITY, 90},  // baseline 4:2:0, libjpeg's default sampling
           {cv::IMWRITE_JPEG_QUALITY, 90, cv::IMWRITE_JPEG_PROGRESSIVE, 1}}) {
    const auto bytes = encode(bgr, ".jpg", params);
    expect_same(decode(bytes), cv::imdecode(bytes, cv::IMREAD_COLOR));
  }
  cv::Mat grey;
  cv::extractChannel(bgr, grey, 1);
  const auto bytes = encode(grey, ".jpg");
  const cv::Mat ref = cv::imdecode(bytes, cv::IMREAD_GRAYSCALE);
  const Image img = decode(bytes);
  ASSERT_EQ(img.width, ref.cols);
  for (int y = 0; y < ref.rows; ++y) {
    for (int x = 0; x < ref.cols; ++x) {
      const auto* p = img.pixel(x, y);
      ASSERT_EQ(p[0], ref.at<std::uint8_t>(y, x));
      ASSERT_EQ(p[1], p[0]);
      ASSERT_EQ(p[2], p[0]);
    }
  }
}

TEST(ImageDecodeTest, JpegExifOrientationIsAppliedLikeExifTranspose) {
  const cv::Mat bgr = random_bgr(8, 5, 3);
  const auto plain = encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 100});
  const Image upright = decode(plain);
  for (int orientation = 1; orientation <= 8; ++orientation) {
    for (bool big_endian : {false, true}) {
      SCOPED_TRACE("orientation " + std::to_string(orientation) + (big_endian ? " MM" : " II"));
      const auto bytes = with_segment(plain, exif_app1(orientation, big_endian));
      const Image img = decode(bytes);
      EXPECT_EQ(img.width, orientation >= 5 ? 5 : 8);
      // OpenCV's IMREAD_COLOR applies the orientation with its own code: an independent check.
      expect_same(img, cv::imdecode(bytes, cv::IMREAD_COLOR));
      EXPECT_EQ(decode_unrotated(bytes), upright);
      if (orientation == 2 || orientation == 3 || orientation == 6) {
        EXPECT_EQ(img, transposed(upright, orientation));
      }
    }
  }
}

TEST(ImageDecodeTest, JpegXmpOrientationIsUsedWithoutExif) {
  // PIL's Image.getexif falls back to tiff:Orientation in the XMP packet.
  const cv::Mat bgr = random_bgr(6, 4, 12);
  const auto plain = encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 100});
  const std::string xmp = std::string("http://ns.adobe.com/xap/1.0/") + '\0' +
                          "<x:xmpmeta><rdf:Description tiff:Orientation=\"8\"/></x:xmpmeta>";
  std::vector<std::uint8_t> seg = {0xFF, 0xE1, 0, 0};
  seg.insert(seg.end(), xmp.begin(), xmp.end());
  seg[2] = static_cast<std::uint8_t>((xmp.size() + 2) >> 8);
  seg[3] = static_cast<std::uint8_t>((xmp.size() + 2) & 0xFF);
  const auto bytes = with_segment(plain, seg);
  EXPECT_EQ(decode(bytes), transposed(decode(plain), 8));
  // An EXIF orientation of 1 wins over the XMP.
  EXPECT_EQ(decode(with_segment(bytes, exif_app1(1, false))), decode(plain));
}

TEST(ImageDecodeTest, MalformedExifIsIgnored) {
  const cv::Mat bgr = random_bgr(8, 5, 13);
  const auto plain = encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 100});
  const Image upright = decode(plain);
  std::vector<std::vector<std::uint8_t>> bad;
  auto seg = exif_app1(6, false);
  seg[10] = 'X';  // byte order neither II nor MM
  bad.push_back(seg);
  seg = exif_app1(6, false);
  seg[14] = 0xF0;  // IFD0 offset far past the end
  bad.push_back(seg);
  seg = exif_app1(6, true);
  seg[19] = 9;  // claims nine entries, holds one: the one before the damage still counts
  bad.push_back(seg);
  seg = exif_app1(6, false);
  seg[22] = 3, seg[23] = 0, seg[24] = 0, seg[25] = 0, seg[26] = 0, seg[27] = 1;  // 3 shorts at 256
  bad.push_back(seg);
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const Image img = decode(with_segment(plain, bad[i]));
    if (i == 2) {
      EXPECT_EQ(img, transposed(upright, 6)) << "case " << i;
    } else {
      EXPECT_EQ(img, upright) << "case " << i;
    }
  }
}

TEST(ImageDecodeTest, CmykJpegConvertsLikePil) {
  // 4x2 CMYK JPEG written by PIL (Adobe marker, inverted samples); the expected pixels are PIL's
  // Image.open(...).convert("RGB") of these bytes (JpegImagePlugin "CMYK;I", Convert.c cmyk2rgb).
  const std::vector<std::uint8_t> bytes = {
      0xff, 0xd8, 0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00,
      0x00, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
      0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
      0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
      0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
      0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff, 0xc0, 0x00,
      0x14, 0x08, 0x00, 0x02, 0x00, 0x04, 0x04, 0x43, 0x11, 0x00, 0x4d, 0x11, 0x00, 0x59, 0x11,
      0x00, 0x4b, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x1f, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01,
      0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04,
      0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x10, 0x00, 0x02, 0x01,
      0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01, 0x02,
      0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22,
      0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
      0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27,
      0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47,
      0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66,
      0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85,
      0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2,
      0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8,
      0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5,
      0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
      0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xda, 0x00, 0x0e, 0x04,
      0x43, 0x00, 0x4d, 0x00, 0x59, 0x00, 0x4b, 0x00, 0x00, 0x3f, 0x00, 0xfa, 0x9b, 0xc4, 0x1f,
      0x1d, 0xbe, 0x37, 0xfc, 0x3d, 0xd2, 0x93, 0x48, 0xf0, 0x0f, 0xc6, 0x4f, 0x8a, 0xbe, 0x07,
      0xd2, 0x6f, 0xfe, 0x3f, 0x7f, 0xc1, 0x49, 0xb5, 0xab, 0xed, 0x2f, 0xc2, 0x1f, 0x10, 0xfc,
      0x5d, 0xe1, 0xad, 0x3a, 0xf3, 0x58, 0xbc, 0xff, 0x00, 0x82, 0xb8, 0x7f, 0xc1, 0x40, 0x60,
      0xbb, 0xd5, 0xae, 0xec, 0xb4, 0x5d, 0x62, 0xca, 0xda, 0xe3, 0x53, 0xba, 0x82, 0xd2, 0xd2,
      0x1b, 0x9b, 0xf9, 0xa2, 0x7b, 0xa9, 0xe2, 0xb5, 0xb7, 0x8e, 0x59, 0x59, 0x21, 0x8c, 0x2e,
      0x27, 0xc0, 0x4f, 0xda, 0x73, 0xf6, 0x93, 0xb0, 0xf8, 0x8b, 0xfb, 0x74, 0x5f, 0x58, 0x7e,
      0xd0, 0x9f, 0x1c, 0x6c, 0xaf, 0x75, 0x8f, 0xf8, 0x28, 0x57, 0xed, 0x5e, 0xba, 0xbd, 0xe5,
      0xa7, 0xc5, 0x8f, 0x1e, 0xdb, 0x5d, 0x6a, 0x8b, 0xe0, 0xef, 0x1b, 0x5b, 0xfc, 0x32, 0xf0,
      0x8a, 0xea, 0x37, 0x10, 0xeb, 0xe9, 0x2d, 0xf2, 0xf8, 0x5b, 0xe1, 0xbf, 0x81, 0x7c, 0x11,
      0xf0, 0xfb, 0xc3, 0x82, 0xe5, 0xe5, 0x1a, 0x1f, 0x82, 0x3c, 0x1d, 0xe1, 0x5f, 0x0a, 0x69,
      0x9f, 0x65, 0xd0, 0x7c, 0x3d, 0xa4, 0x58, 0x59, 0xf3, 0xff, 0x00, 0x16, 0xbc, 0x25, 0xe1,
      0x4f, 0xda, 0x63, 0x4a, 0xf8, 0x7d, 0xf1, 0x1b, 0xf6, 0x8f, 0xf0, 0xcf, 0x87, 0xbf, 0x68,
      0x0f, 0x88, 0x56, 0x7a, 0xdf, 0xed, 0x85, 0xe0, 0x7b, 0x4f, 0x1e, 0x7c, 0x6d, 0xd1, 0x74,
      0xdf, 0x8a, 0xde, 0x33, 0xb5, 0xf0, 0x57, 0x82, 0x3f, 0xe0, 0xa4, 0xbf, 0xb6, 0xde, 0x81,
      0xe0, 0xbf, 0x08, 0x5b, 0x78, 0xa3, 0xc7, 0x76, 0xda, 0xf6, 0xb7, 0x07, 0x85, 0xfc, 0x21,
      0xa1, 0x5a, 0xdb, 0x68, 0xbe, 0x17, 0xf0, 0xfc, 0x57, 0xcb, 0xa4, 0xe8, 0x1a, 0x4d, 0xbc,
      0x1a, 0x76, 0x95, 0x69, 0x69, 0x67, 0x0c, 0x70, 0xaf, 0xf4, 0x01, 0xff, 0x00, 0x04, 0x27,
      0xf0, 0xbf, 0x86, 0xbf, 0x6a, 0x8f, 0xf8, 0x26, 0x27, 0xc0, 0xaf, 0x8c, 0xdf, 0xb4, 0xff,
      0x00, 0x87, 0x74, 0x2f, 0xda, 0x3f, 0xe3, 0x06, 0xb9, 0xe3, 0xaf, 0xda, 0x83, 0x47, 0xd6,
      0xfe, 0x2b, 0xfc, 0x79, 0xd2, 0x34, 0xff, 0x00, 0x8b, 0xff, 0x00, 0x12, 0xb5, 0x8d, 0x23,
      0xc2, 0x9f, 0xb5, 0x67, 0xc6, 0xcf, 0x0d, 0x78, 0x5b, 0x4b, 0xd5, 0x7c, 0x75, 0xf1, 0x0a,
      0xdf, 0xc4, 0x5e, 0x28, 0xd4, 0x34, 0xef, 0x0d, 0x78, 0x73, 0x4c, 0xd3, 0x74, 0x0d, 0x02,
      0xc6, 0xef, 0x54, 0x9a, 0xdb, 0x46, 0xd1, 0x34, 0xfb, 0x1d, 0x2b, 0x4e, 0x8a, 0xda, 0xc6,
      0xd2, 0xde, 0x08, 0xff, 0x00, 0xff, 0xd9};
  const Image img = decode(bytes);
  EXPECT_EQ(img.width, 4);
  EXPECT_EQ(img.height, 2);
  EXPECT_EQ(img.rgb,
            (std::vector<std::uint8_t>{255, 255, 255, 0, 254, 254, 190, 0,  191, 127, 127, 0,
                                       49,  42,  36,  0, 0,   0,   227, 51, 208, 127, 127, 127}));
}

// A PNG written here byte by byte (stored deflate blocks, no filters), so that the tests do not
// lean on the decoder's own library. `samples` holds width * height * channels values.
struct PngSpec {
  int width = 0;
  int height = 0;
  int colour = 2;  // 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA
  int depth = 8;
  bool interlaced = false;
  std::vector<std::uint16_t> samples;
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> before_idat, after_idat;
};

PngSpec png_spec(int width, int height, int colour, int depth) {
  PngSpec spec;
  spec.width = width;
  spec.height = height;
  spec.colour = colour;
  spec.depth = depth;
  return spec;
}

std::uint32_t crc32(const std::uint8_t* p, std::size_t n, std::uint32_t crc = 0xFFFFFFFFu) {
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc;
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

void put_chunk(std::vector<std::uint8_t>& out, const std::string& type,
               const std::vector<std::uint8_t>& data) {
  put32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type.begin(), type.end());
  out.insert(out.end(), data.begin(), data.end());
  put32(out, crc32(out.data() + start, out.size() - start) ^ 0xFFFFFFFFu);
}

std::vector<std::uint8_t> make_png(const PngSpec& spec) {
  const int channels = spec.colour == 0 || spec.colour == 3 ? 1
                       : spec.colour == 4                   ? 2
                       : spec.colour == 2                   ? 3
                                                            : 4;
  // Adam7 passes (x0, y0, dx, dy), or the whole image.
  std::vector<std::array<int, 4>> passes = {{0, 0, 1, 1}};
  if (spec.interlaced) {
    passes = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
              {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  }
  std::vector<std::uint8_t> raw;
  for (const auto& [x0, y0, dx, dy] : passes) {
    if (x0 >= spec.width || y0 >= spec.height) continue;  // empty pass: no rows at all
    for (int y = y0; y < spec.height; y += dy) {
      raw.push_back(0);  // filter: none
      int bits = 0, acc = 0;
      for (int x = x0; x < spec.width; x += dx) {
        for (int c = 0; c < channels; ++c) {
          const std::uint16_t v = spec.samples[(std::size_t(y) * spec.width + x) * channels + c];
          if (spec.depth == 16) {
            raw.push_back(static_cast<std::uint8_t>(v >> 8));
            raw.push_back(static_cast<std::uint8_t>(v));
          } else {
            acc = (acc << spec.depth) | v;
            bits += spec.depth;
            if (bits == 8) raw.push_back(static_cast<std::uint8_t>(acc)), bits = acc = 0;
          }
        }
      }
      if (bits > 0) raw.push_back(static_cast<std::uint8_t>(acc << (8 - bits)));
    }
  }
  std::vector<std::uint8_t> z = {0x78, 0x01};
  for (std::size_t at = 0; at < raw.size() || at == 0; at += 65535) {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - at);
    z.push_back(at + n >= raw.size() ? 1 : 0);
    z.push_back(static_cast<std::uint8_t>(n)), z.push_back(static_cast<std::uint8_t>(n >> 8));
    z.push_back(static_cast<std::uint8_t>(~n)), z.push_back(static_cast<std::uint8_t>(~n >> 8));
    z.insert(z.end(), raw.begin() + at, raw.begin() + at + n);
    if (raw.empty()) break;
  }
  std::uint32_t a = 1, b = 0;
  for (std::uint8_t v : raw) a = (a + v) % 65521, b = (b + a) % 65521;
  put32(z, (b << 16) | a);

  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<std::uint8_t> ihdr;
  put32(ihdr, spec.width);
  put32(ihdr, spec.height);
  ihdr.insert(ihdr.end(),
              {static_cast<std::uint8_t>(spec.depth), static_cast<std::uint8_t>(spec.colour), 0, 0,
               static_cast<std::uint8_t>(spec.interlaced ? 1 : 0)});
  put_chunk(out, "IHDR", ihdr);
  for (const auto& [type, data] : spec.before_idat) put_chunk(out, type, data);
  put_chunk(out, "IDAT", z);
  for (const auto& [type, data] : spec.after_idat) put_chunk(out, type, data);
  put_chunk(out, "IEND", {});
  return out;
}

std::vector<std::uint16_t> random_samples(std::size_t n, int depth, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint16_t> v(n);
  for (auto& s : v) s = static_cast<std::uint16_t>(rng() & ((1u << depth) - 1));
  return v;
}

TEST(ImageDecodeTest, OurPngWriterAgreesWithOpenCv) {
  PngSpec spec = png_spec(5, 3, 2, 8);
  spec.samples = random_samples(5 * 3 * 3, 8, 20);
  const auto bytes = make_png(spec);
  const cv::Mat ref = cv::imdecode(bytes, cv::IMREAD_COLOR);
  ASSERT_FALSE(ref.empty());
  expect_same(decode(bytes), ref);
}

TEST(ImageDecodeTest, PalettePngMapsThroughPlte) {
  // 2-bit indices, three palette entries and a tRNS chunk. PIL's convert("RGB") ignores the
  // transparency; index 3 has no entry and is black (Pillow >= 10.1: Palette.c ImagingPaletteNew).
  PngSpec spec = png_spec(5, 1, 3, 2);
  spec.samples = {0, 1, 2, 3, 1};
  spec.before_idat = {{"PLTE", {10, 20, 30, 40, 50, 60, 70, 80, 90}}, {"tRNS", {0, 128}}};
  EXPECT_EQ(decode(make_png(spec)).rgb,
            (std::vector<std::uint8_t>{10, 20, 30, 40, 50, 60, 70, 80, 90, 0, 0, 0, 40, 50, 60}));
}

TEST(ImageDecodeTest, LowBitGreyPngsScaleLikePil) {
  // PIL's "1" gives 0/255, "L;2" multiplies by 85 and "L;4" by 17 (Unpack.c).
  for (int depth : {1, 2, 4}) {
    const int levels = 1 << depth;
    PngSpec spec = png_spec(levels + 3, 2, 0, depth);
    spec.samples = random_samples(std::size_t(spec.width) * 2, depth, 30 + depth);
    for (int i = 0; i < levels; ++i) spec.samples[i] = static_cast<std::uint16_t>(i);
    const Image img = decode(make_png(spec));
    const int scale = 255 / (levels - 1);
    for (std::size_t i = 0; i < spec.samples.size(); ++i) {
      ASSERT_EQ(img.rgb[i * 3], spec.samples[i] * scale) << "depth " << depth << " at " << i;
      ASSERT_EQ(img.rgb[i * 3 + 1], img.rgb[i * 3]);
      ASSERT_EQ(img.rgb[i * 3 + 2], img.rgb[i * 3]);
    }
  }
}

TEST(ImageDecodeTest, SixteenBitAlphaPngsKeepTheHighByte) {
  PngSpec la = png_spec(2, 1, 4, 16);
  la.samples = {0x1234, 0xFFFF, 0xABCD, 0x0000};
  EXPECT_EQ(decode(make_png(la)).rgb,
            (std::vector<std::uint8_t>{0x12, 0x12, 0x12, 0xAB, 0xAB, 0xAB}));
  PngSpec rgba = png_spec(1, 1, 6, 16);
  rgba.samples = {0x1234, 0x5678, 0x9ABC, 0x0001};
  EXPECT_EQ(decode(make_png(rgba)).rgb, (std::vector<std::uint8_t>{0x12, 0x56, 0x9A}));
  PngSpec grey = png_spec(3, 1, 0, 16);
  grey.samples = {7, 255, 256};  // PIL mode "I" clips to 0..255
  EXPECT_EQ(decode(make_png(grey)).rgb,
            (std::vector<std::uint8_t>{7, 7, 7, 255, 255, 255, 255, 255, 255}));
}

TEST(ImageDecodeTest, InterlacedPngsDecodeLikePlainOnes) {
  struct Case {
    int colour, depth, channels;
  };
  for (const Case c : {Case{2, 8, 3}, Case{0, 2, 1}, Case{6, 16, 4}, Case{3, 4, 1}}) {
    for (auto [w, h] : {std::pair{13, 11}, std::pair{1, 1}, std::pair{3, 9}}) {
      PngSpec spec = png_spec(w, h, c.colour, c.depth);
      spec.samples = random_samples(std::size_t(w) * h * c.channels, c.depth, 40 + w);
      if (c.colour == 3) {
        std::vector<std::uint8_t> plte(48);
        for (std::size_t i = 0; i < plte.size(); ++i) plte[i] = static_cast<std::uint8_t>(i * 5);
        spec.before_idat = {{"PLTE", plte}};
      }
      const Image plain = decode(make_png(spec));
      spec.interlaced = true;
      EXPECT_EQ(decode(make_png(spec)), plain) << "colour " << c.colour << " " << w << "x" << h;
    }
  }
}

TEST(ImageDecodeTest, PngExifChunkOrientationIsApplied) {
  PngSpec spec = png_spec(4, 3, 2, 8);
  spec.samples = random_samples(4 * 3 * 3, 8, 50);
  const Image upright = decode(make_png(spec));
  for (int orientation : {3, 6}) {
    auto app1 = exif_app1(orientation, orientation == 6);
    const std::vector<std::uint8_t> tiff(app1.begin() + 10, app1.end());  // eXIf holds bare TIFF
    spec.before_idat = {{"eXIf", tiff}};
    EXPECT_EQ(decode(make_png(spec)), transposed(upright, orientation));
    // PIL also reads an eXIf after the image data (PngImageFile.load_end).
    spec.before_idat.clear();
    spec.after_idat = {{"eXIf", tiff}};
    const auto bytes = make_png(spec);
    EXPECT_EQ(decode(bytes), transposed(upright, orientation));
    EXPECT_EQ(decode_unrotated(bytes), upright);
    spec.after_idat.clear();
  }
}

TEST(ImageDecodeTest, CorruptJpegAndPngThrowFormatErrorsAndPrintNothing) {
  const auto png = encode(random_bgr(40, 30, 14), ".png");
  const auto jpg = encode(random_bgr(40, 30, 14), ".jpg");
  auto png_bad_data = png;
  png_bad_data[png.size() / 2] ^= 0x55;  // inside IDAT: zlib data or check fails
  auto jpg_bad_table = jpg;
  std::size_t dht = 2;
  while (!(jpg[dht] == 0xFF && jpg[dht + 1] == 0xC4)) ++dht;
  jpg_bad_table[dht + 4] = 0x7F;  // a Huffman table class and index libjpeg refuses
  std::vector<std::uint8_t> png_short(png.begin(), png.end() - 40);  // ends inside IDAT
  const std::vector<std::vector<std::uint8_t>> cases = {png_bad_data, jpg_bad_table, png_short};
  const auto level = core::log_level();
  core::set_log_level(core::LogLevel::Info);
  testing::internal::CaptureStderr();
  std::vector<std::string> messages;
  for (const auto& bytes : cases) {
    try {
      decode_image(bytes.data(), bytes.size(), "bad-file.img");
      messages.push_back("decoded");
    } catch (const FormatError& e) {
      messages.push_back(e.what());
    } catch (const std::exception& e) {
      messages.push_back(std::string("other error: ") + e.what());
    }
  }
  const std::string err = testing::internal::GetCapturedStderr();
  core::set_log_level(level);
  EXPECT_EQ(err, "");
  for (const auto& m : messages) {
    EXPECT_EQ(m.rfind("'bad-file.img': cannot decode ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_NE(messages[1].find("JPEG"), std::string::npos) << messages[1];
}

TEST(ImageDecodeTest, DecoderWarningsGoToTheDebugLog) {
  // The scan cut short but EOI kept: libjpeg warns ("premature end of data segment"), pads the
  // rest and decodes, as PIL does.
  auto jpg = encode(random_bgr(32, 32, 15), ".jpg");
  jpg.erase(jpg.end() - 62, jpg.end() - 2);
  const auto level = core::log_level();
  core::set_log_level(core::LogLevel::Info);
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW(decode(jpg));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  core::set_log_level(core::LogLevel::Debug);
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW(decode(jpg));
  const std::string err = testing::internal::GetCapturedStderr();
  core::set_log_level(level);
  EXPECT_NE(err.find("glimpse[debug]: 'test': libjpeg: "), std::string::npos) << err;
  EXPECT_NE(err.find("Corrupt JPEG data"), std::string::npos) << err;
}

TEST(ImageHeaderTest, ReadsDimensionsOfEveryFormat) {
  const cv::Mat bgr = random_bgr(19, 7, 4);
  for (auto [ext, format] : {std::pair{".png", ImageFormat::Png},
                             {".jpg", ImageFormat::Jpeg},
                             {".bmp", ImageFormat::Bmp},
                             {".webp", ImageFormat::WebP}}) {
    const auto bytes = encode(bgr, ext);
    const auto h = read_image_header(bytes.data(), bytes.size(), "x");
    EXPECT_EQ(h.format, format) << ext;
    EXPECT_EQ(h.width, 19) << ext;
    EXPECT_EQ(h.height, 7) << ext;
  }
  const auto lossless = encode(bgr, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101});  // VP8L chunk
  const auto h = read_image_header(lossless.data(), lossless.size(), "x");
  EXPECT_EQ(h.width, 19);
  EXPECT_EQ(h.height, 7);
}

TEST(ImageDecodeTest, EnormousDimensionsAreRefusedFromTheHeader) {
  auto bytes = encode(random_bgr(4, 4, 5), ".png");
  // IHDR width and height (big-endian) at bytes 16 and 20: 100000 x 100000.
  for (int at : {16, 20}) {
    bytes[at] = 0x00;
    bytes[at + 1] = 0x01;
    bytes[at + 2] = 0x86;
    bytes[at + 3] = 0xA0;
  }
  try {
    decode(bytes);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("100000x100000"), std::string::npos) << e.what();
  }
  DecodeOptions small;
  small.max_pixels = 15;
  const auto ok = encode(random_bgr(4, 4, 5), ".png");
  EXPECT_THROW(decode_image(ok.data(), ok.size(), "x", small), InputError);
}

TEST(ImageDecodeTest, BadBytesThrowOneLineErrors) {
  const auto png = encode(random_bgr(40, 30, 6), ".png");
  const auto jpg = encode(random_bgr(40, 30, 6), ".jpg");
  std::vector<std::vector<std::uint8_t>> cases = {
      {},                                                                    // empty
      {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0},                            // unsupported format
      {'h', 'e', 'l', 'l', 'o'},                                             // not an image
      std::vector<std::uint8_t>(png.begin(), png.begin() + 20),              // truncated IHDR
      std::vector<std::uint8_t>(png.begin(), png.begin() + png.size() / 2),  // truncated data
      std::vector<std::uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2),  // truncated JPEG
      std::vector<std::uint8_t>(jpg.begin(), jpg.begin() + 4),
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    try {
      decode_image(cases[i].data(), cases[i].size(), "case.bin");
      ADD_FAILURE() << "case " << i << " decoded";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find("case.bin"), std::string::npos) << msg;
    }
  }
}

TEST(ImageDecodeTest, CorruptedBytesNeverCrash) {
  const auto png = encode(random_bgr(16, 16, 7), ".png");
  const auto jpg = encode(random_bgr(16, 16, 7), ".jpg");
  std::mt19937 rng(8);
  for (const auto* base : {&png, &jpg}) {
    for (int trial = 0; trial < 200; ++trial) {
      auto bytes = *base;
      for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
      try {
        const Image img = decode(bytes);
        EXPECT_EQ(img.rgb.size(), img.row_bytes() * img.height);
      } catch (const Error&) {
      }
    }
  }
}

TEST(ImageLoadTest, FilesAndErrors) {
  test::TempDir dir;
  const cv::Mat bgr = random_bgr(5, 6, 9);
  write_file(dir.file("a.png"), encode(bgr, ".png"));
  expect_same(load_image(dir.file("a.png")), bgr);
  EXPECT_THROW(load_image(dir.file("missing.png")), InputError);
  EXPECT_THROW(load_image(dir.path().string()), InputError);
  write_file(dir.file("empty.png"), {});
  EXPECT_THROW(load_image(dir.file("empty.png")), FormatError);

  Image img(3, 2);
  for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i * 13);
  save_png(img, dir.file("b.png"));
  EXPECT_EQ(load_image(dir.file("b.png")), img);
}

}  // namespace
}  // namespace glimpse::vision
