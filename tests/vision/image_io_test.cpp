// Image decoding: formats, RGB conversion as PIL's convert("RGB"), and bad input.
#include "glimpse/vision/image_io.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <iterator>
#include <random>

#include "glimpse/core/error.h"
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

TEST(ImageDecodeTest, ExifOrientationIsIgnoredLikePil) {
  const cv::Mat bgr = random_bgr(8, 4, 3);
  auto bytes = encode(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 100});
  // APP1 "Exif": little-endian TIFF with one IFD entry, Orientation (0x0112) = 6 (rotate 90).
  const std::vector<std::uint8_t> app1 = {0xFF, 0xE1, 0x00, 0x22, 'E',  'x',  'i',  'f',  0x00,
                                          0x00, 'I',  'I',  0x2A, 0x00, 0x08, 0x00, 0x00, 0x00,
                                          0x01, 0x00, 0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00,
                                          0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  bytes.insert(bytes.begin() + 2, app1.begin(), app1.end());
  const cv::Mat rotated = cv::imdecode(bytes, cv::IMREAD_COLOR);
  ASSERT_EQ(rotated.cols, 4) << "OpenCV should honour the EXIF tag with IMREAD_COLOR";
  const Image img = decode(bytes);
  EXPECT_EQ(img.width, 8);
  EXPECT_EQ(img.height, 4);
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
