// qwen-vl-utils frame sampling: smart_nframes and linspace indices.
#include "glimpse/video/sampling.h"

#include <gtest/gtest.h>

#include "glimpse/core/error.h"

namespace glimpse::video {
namespace {

FrameSampling fps(double f) {
  FrameSampling s;
  s.fps = f;
  return s;
}
FrameSampling count(std::int64_t n) {
  FrameSampling s;
  s.nframes = n;
  return s;
}

TEST(VideoSamplingTest, SmartNframesFromFps) {
  EXPECT_EQ(smart_nframes({}, 100, 25.0), 8);         // 4 s at 2 fps
  EXPECT_EQ(smart_nframes(fps(1.0), 100, 25.0), 4);   // 4 frames, the minimum
  EXPECT_EQ(smart_nframes({}, 10, 30.0), 4);          // 0.67 -> at least FPS_MIN_FRAMES
  EXPECT_EQ(smart_nframes({}, 3, 30.0), 2);           // capped by floor2(total)
  EXPECT_EQ(smart_nframes({}, 99, 10.0), 18);         // 19.8 -> floor to a multiple of 2
  EXPECT_EQ(smart_nframes({}, 100000, 30.0), 768);    // FPS_MAX_FRAMES
  EXPECT_EQ(smart_nframes(fps(30.0), 61, 30.0), 60);  // never more than total frames
  FrameSampling capped;
  capped.max_frames = 9;
  EXPECT_EQ(smart_nframes(capped, 1000, 10.0), 8);
}

TEST(VideoSamplingTest, SmartNframesFromCountRoundsHalfToEven) {
  EXPECT_EQ(smart_nframes(count(8), 100, 25.0), 8);
  EXPECT_EQ(smart_nframes(count(7), 100, 25.0), 8);                // round(3.5) = 4
  EXPECT_EQ(smart_nframes(count(5), 100, 25.0), 4);                // round(2.5) = 2
  EXPECT_THROW(smart_nframes(count(1), 100, 25.0), InputError);    // rounds to 0
  EXPECT_THROW(smart_nframes(count(200), 100, 25.0), InputError);  // more than the video has
}

TEST(VideoSamplingTest, BadRequestsThrow) {
  FrameSampling both;
  both.fps = 2.0;
  both.nframes = 4;
  EXPECT_THROW(smart_nframes(both, 100, 25.0), InputError);
  EXPECT_THROW(smart_nframes({}, 1, 25.0), InputError);  // a single frame cannot fill 2
  EXPECT_THROW(smart_nframes({}, 0, 25.0), InputError);
  EXPECT_THROW(smart_nframes({}, 100, 0.0), InputError);
  EXPECT_THROW(smart_nframes(fps(-1.0), 100, 25.0), InputError);
}

TEST(VideoSamplingTest, LinspaceIndices) {
  EXPECT_EQ(linspace_indices(10, 4), (std::vector<std::int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(linspace_indices(100, 8), (std::vector<std::int64_t>{0, 14, 28, 42, 57, 71, 85, 99}));
  EXPECT_EQ(linspace_indices(5, 2), (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(linspace_indices(3, 4), (std::vector<std::int64_t>{0, 1, 1, 2}));  // 0, .67, 1.33, 2
  EXPECT_EQ(sample_frame_indices({}, 50, 25.0), (std::vector<std::int64_t>{0, 16, 33, 49}));
}

}  // namespace
}  // namespace glimpse::video
