// ProcessorRequest::limits: pixels per image and frame, frames per video and prompt tokens, each
// refused with an error naming the limit before the work it bounds.
#include <gtest/gtest.h>

#include "glimpse/core/error.h"
#include "glimpse/model/processor.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

std::string error_of(const Processor& p, const ProcessorRequest& r) {
  try {
    p.process(r);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

vision::Image grey(int w, int h) {
  vision::Image img(w, h);
  std::fill(img.rgb.begin(), img.rgb.end(), 128);
  return img;
}

TEST(ProcessorLimitsGolden, EachLimitIsNamedWhenExceeded) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    const auto p = Processor::load(test::fixtures_dir() + "/" + name + "/model");
    ProcessorRequest r;
    r.prompt = "What is this?";
    r.images.push_back(grey(64, 48));
    const std::int64_t tokens = p->process(r).inputs.input_ids.size(1);
    r.limits.max_image_pixels = 64 * 48;  // exactly at the limit: fine
    EXPECT_EQ(error_of(*p, r), "") << name;
    r.limits.max_image_pixels = 64 * 48 - 1;
    EXPECT_NE(error_of(*p, r).find(
                  "image 0: 64x48 pixels exceed the request's limit of 3071 (max_image_pixels)"),
              std::string::npos)
        << name << ": " << error_of(*p, r);
    r.limits = {};
    r.limits.max_tokens = tokens;
    EXPECT_EQ(error_of(*p, r), "") << name;
    r.limits.max_tokens = tokens - 1;
    EXPECT_NE(error_of(*p, r).find("(max_tokens)"), std::string::npos) << name;
    r.limits = {};
    r.limits.max_video_frames = 0;
    EXPECT_NE(error_of(*p, r).find("must be positive"), std::string::npos) << name;
  }
  // Frames of a video given as pictures.
  const auto q = Processor::load(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  ProcessorRequest v;
  v.prompt = "What happens?";
  VideoInput video;
  for (int i = 0; i < 4; ++i) video.frames.push_back(grey(56, 56));
  v.videos.push_back(video);
  EXPECT_EQ(error_of(*q, v), "");
  v.limits.max_video_frames = 3;
  EXPECT_NE(
      error_of(*q, v).find("video 0: 4 frames exceed the request's limit of 3 (max_video_frames)"),
      std::string::npos)
      << error_of(*q, v);
  v.limits.max_video_frames = 4;
  v.limits.max_image_pixels = 56 * 56 - 1;
  EXPECT_NE(error_of(*q, v).find("video 0 frame 0: 56x56"), std::string::npos) << error_of(*q, v);
}

}  // namespace
}  // namespace glimpse::model
