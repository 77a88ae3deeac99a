// FFmpeg decoding: videos written here with known frames (lossless codecs, so pixels are exact),
// then probed, sampled and read back; and bad files.
#include "glimpse/video/decoder.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "glimpse/core/error.h"
#include "glimpse/models/qwen2_vl/vision_process.h"
#include "glimpse/video/encoder.h"
#include "test_util.h"

namespace glimpse::video {
namespace {

// Frame i: a gradient shifted by i, with the frame number in pixel (0, 0).
vision::Image numbered_frame(int i, int w = 48, int h = 32) {
  vision::Image f(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      auto* p = f.pixel(x, y);
      p[0] = static_cast<std::uint8_t>(x * 5 + i);
      p[1] = static_cast<std::uint8_t>(y * 7 + 3 * i);
      p[2] = static_cast<std::uint8_t>((x ^ y) + i * 11);
    }
  }
  f.pixel(0, 0)[0] = static_cast<std::uint8_t>(i);
  return f;
}

std::vector<vision::Image> numbered_frames(int n) {
  std::vector<vision::Image> frames;
  for (int i = 0; i < n; ++i) frames.push_back(numbered_frame(i));
  return frames;
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

class VideoDecodeTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(VideoDecodeTest, ProbeSampleAndReadExactFrames) {
  const auto [codec, ext] = GetParam();
  test::TempDir dir;
  const std::string path = dir.file("clip" + ext);
  EncodeOptions enc;
  enc.codec = codec;
  enc.fps = 10.0;
  write_video(path, numbered_frames(25), enc);

  const VideoInfo info = probe_video(path);
  EXPECT_EQ(info.width, 48);
  EXPECT_EQ(info.height, 32);
  EXPECT_EQ(info.frame_count, 25);
  EXPECT_NEAR(info.fps, 10.0, 1e-6);
  EXPECT_EQ(info.codec, codec);

  // 2.5 s at 2 fps: 5 -> 4 frames at linspace(0, 24, 4).round() = 0, 8, 16, 24.
  const SampledVideo v = read_video(path);
  EXPECT_EQ(v.indices, (std::vector<std::int64_t>{0, 8, 16, 24}));
  EXPECT_DOUBLE_EQ(v.sample_fps, 4.0 / 25.0 * 10.0);
  ASSERT_EQ(v.frames.size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(v.frames[k], numbered_frame(static_cast<int>(v.indices[k]))) << "frame " << k;
  }

  // Any order, repeats, a transform.
  const auto frames = read_frames(path, {7, 3, 7, 24}, [](vision::Image&& f) {
    f.pixel(1, 1)[0] = 255;
    return std::move(f);
  });
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].pixel(0, 0)[0], 7);
  EXPECT_EQ(frames[1].pixel(0, 0)[0], 3);
  EXPECT_EQ(frames[2], frames[0]);
  EXPECT_EQ(frames[3].pixel(0, 0)[0], 24);
  EXPECT_EQ(frames[3].pixel(1, 1)[0], 255);
  EXPECT_THROW(read_frames(path, {25}), InputError);
  EXPECT_THROW(read_frames(path, {-1}), InputError);
}

INSTANTIATE_TEST_SUITE_P(Lossless, VideoDecodeTest,
                         ::testing::Values(std::pair<std::string, std::string>{"ffv1", ".mkv"},
                                           std::pair<std::string, std::string>{"png", ".avi"}),
                         [](const auto& info) { return info.param.first; });

TEST(VideoDecodeLossyTest, Mpeg4InMp4IsClose) {
  test::TempDir dir;
  const std::string path = dir.file("clip.mp4");
  EncodeOptions enc;
  enc.codec = "mpeg4";
  enc.fps = 4.0;
  std::vector<vision::Image> frames;
  for (int i = 0; i < 12; ++i) {
    vision::Image f(64, 48);
    std::fill(f.rgb.begin(), f.rgb.end(), static_cast<std::uint8_t>(20 * i));
    frames.push_back(f);
  }
  write_video(path, frames, enc);
  const SampledVideo v = read_video(path);
  EXPECT_EQ(v.info.frame_count, 12);
  EXPECT_EQ(v.indices, (std::vector<std::int64_t>{0, 2, 4, 7, 9, 11}));  // 3 s at 2 fps
  for (std::size_t k = 0; k < v.frames.size(); ++k) {
    const int want = 20 * static_cast<int>(v.indices[k]);
    EXPECT_NEAR(v.frames[k].pixel(32, 24)[1], want, 6) << "frame " << k;
  }
}

TEST(VideoDecodeTest, QwenFetchVideoResizesToTheFrameBudget) {
  test::TempDir dir;
  const std::string path = dir.file("clip.mkv");
  EncodeOptions enc;
  enc.fps = 10.0;
  write_video(path, numbered_frames(25), enc);
  models::qwen2_vl::VideoOptions opts;
  const auto v = models::qwen2_vl::fetch_video(path, opts);
  EXPECT_EQ(v.indices, (std::vector<std::int64_t>{0, 8, 16, 24}));
  // 32x48 has 1536 pixels < VIDEO_MIN_PIXELS (100352): scaled up to multiples of 28.
  const auto size = models::qwen2_vl::video_frame_size(32, 48, 4, opts);
  EXPECT_EQ(size, (models::qwen2_vl::HeightWidth{280, 392}));
  ASSERT_EQ(v.frames.size(), 4u);
  EXPECT_EQ(v.frames[0].height, 280);
  EXPECT_EQ(v.frames[0].width, 392);
  EXPECT_DOUBLE_EQ(v.sample_fps, 1.6);
}

TEST(VideoDecodeTest, FrameBudgetFollowsQwenVlUtils) {
  using models::qwen2_vl::HeightWidth;
  using models::qwen2_vl::video_frame_size;
  models::qwen2_vl::VideoOptions o;
  // 1080p, 16 frames: per-frame max = min(768 * 784, total / 16 * 2) = 602112.
  EXPECT_EQ(video_frame_size(1080, 1920, 16, o), (HeightWidth{560, 1008}));
  // Many frames shrink the budget: total_pixels / nframes * 2, at least int(min_pixels * 1.05).
  o.total_pixels = 768 * 28 * 28;
  EXPECT_EQ(video_frame_size(1080, 1920, 768, o), (HeightWidth{224, 420}));
  o.resized = HeightWidth{100, 200};
  EXPECT_EQ(video_frame_size(1080, 1920, 16, o), (HeightWidth{112, 196}));
}

TEST(VideoDecodeTest, BadFilesThrowOneLineErrors) {
  test::TempDir dir;
  const std::string good = dir.file("good.avi");
  EncodeOptions enc;
  enc.codec = "png";
  write_video(good, numbered_frames(6), enc);
  const auto bytes = read_bytes(good);

  std::vector<std::string> bad;
  bad.push_back(dir.file("missing.mp4"));
  write_bytes(dir.file("empty.mp4"), {});
  bad.push_back(dir.file("empty.mp4"));
  write_bytes(dir.file("text.mp4"), {'n', 'o', 't', ' ', 'a', ' ', 'v', 'i', 'd', 'e', 'o'});
  bad.push_back(dir.file("text.mp4"));
  write_bytes(dir.file("head.avi"), std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + 64));
  bad.push_back(dir.file("head.avi"));
  write_video(dir.file("noframes.mkv"), {}, {});
  bad.push_back(dir.file("noframes.mkv"));
  // An AVI whose codec tag names no decoder.
  auto unknown = bytes;
  for (std::size_t i = 0; i + 4 <= unknown.size(); ++i) {
    if (std::equal(unknown.begin() + i, unknown.begin() + i + 4, "MPNG")) {
      std::copy_n("QQQQ", 4, unknown.begin() + i);
    }
  }
  write_bytes(dir.file("codec.avi"), unknown);
  bad.push_back(dir.file("codec.avi"));
  bad.push_back(dir.path().string());  // a folder

  for (const auto& path : bad) {
    try {
      const auto v = read_video(path);
      ADD_FAILURE() << path << " decoded " << v.frames.size() << " frames";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
    }
  }
  try {
    read_video(dir.file("codec.avi"));
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("codec"), std::string::npos) << e.what();
  } catch (const Error& e) {
    ADD_FAILURE() << "expected UnsupportedError, got: " << e.what();
  }
}

TEST(VideoDecodeTest, CorruptedBytesNeverCrashOrHang) {
  test::TempDir dir;
  const std::string good = dir.file("good.mkv");
  write_video(good, numbered_frames(8), {});
  const auto bytes = read_bytes(good);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 30; ++trial) {
    auto b = bytes;
    if (trial % 3 == 0) b.resize(b.size() * (trial + 1) / 31);  // truncated
    for (int k = 0; k < 16; ++k) b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
    const std::string path = dir.file("bad" + std::to_string(trial) + ".mkv");
    write_bytes(path, b);
    try {
      const auto v = read_video(path);
      for (const auto& f : v.frames) EXPECT_EQ(f.rgb.size(), f.row_bytes() * f.height);
    } catch (const Error&) {
    }
  }
}

}  // namespace
// FFmpeg's log callback is process-wide: decoding and encoding leave it as the host set it (here
// FFmpeg's default, which prints to stderr); only the explicit opt-in replaces it.
TEST(VideoDecodeTest, FfmpegLogIsLeftAloneUntilTheOptIn) {
  test::TempDir dir;
  const std::string path = dir.file("clip.mkv");
  std::vector<vision::Image> frames(3, vision::Image(32, 24));
  write_video(path, frames);
  EXPECT_EQ(read_frames(path, {0, 2}).size(), 2u);
  // av_log from the libavutil that libglimpse loaded.
  using AvLog = void (*)(void*, int, const char*, ...);
  const auto av_log = reinterpret_cast<AvLog>(dlsym(RTLD_DEFAULT, "av_log"));
  ASSERT_NE(av_log, nullptr);
  constexpr int kAvLogError = 16;
  ::testing::internal::CaptureStderr();
  av_log(nullptr, kAvLogError, "glimpse-probe-before\n");
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("glimpse-probe-before"),
            std::string::npos)
      << "the library replaced FFmpeg's log callback without being asked";
  route_ffmpeg_log_to_glimpse();
  ::testing::internal::CaptureStderr();
  av_log(nullptr, kAvLogError, "glimpse-probe-after\n");
  EXPECT_EQ(::testing::internal::GetCapturedStderr().find("glimpse-probe-after"),
            std::string::npos);
}

}  // namespace glimpse::video
