// The LLaVA-1.5 Processor against transformers 4.50 LlavaProcessor outputs
// (tiny-llava-1.5/cases/*.inputs.safetensors): from the raw images and each case's user text, the
// rendered prompt, input_ids (BOS, 16 <image> tokens per image), attention_mask and pixel_values;
// the layout is the model's prefill layout. Then the errors a request can cause.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/model/processor.h"
#include "glimpse/vision/image_io.h"
#include "test_util.h"
#include "text/text_test_util.h"

namespace glimpse::model {
namespace {

using nlohmann::json;

const char* const kModel = "tiny-llava-1.5";

std::string fixture(const std::string& rel) {
  return test::fixtures_dir() + "/" + rel;
}

vision::Image image(const std::string& name) {
  return vision::load_image(fixture("images/" + name));
}

std::string manifest_prompt(const std::string& name) {
  std::ifstream in(fixture(std::string(kModel) + "/manifest.json"));
  return json::parse(in).at("cases").at(name).at("prompt_text").get<std::string>();
}

std::unique_ptr<Processor> load() {
  return Processor::load(fixture(std::string(kModel) + "/model"));
}

void expect_case_inputs(const std::string& name, const ProcessedInputs& got) {
  SCOPED_TRACE(name);
  const auto file = core::SafetensorsFile::open(
      fixture(std::string(kModel) + "/cases/" + name + ".inputs.safetensors"));
  const auto& in = got.inputs;
  const std::pair<const char*, const at::Tensor*> ours[] = {{"input_ids", &in.input_ids},
                                                            {"attention_mask", &in.attention_mask},
                                                            {"pixel_values", &in.pixel_values}};
  std::size_t defined = 0;
  for (const auto& [tensor, t] : ours) {
    if (!file.find(tensor)) {
      EXPECT_FALSE(t->defined()) << tensor << " is not in the fixture";
      continue;
    }
    ++defined;
    const at::Tensor want = core::load_tensor(file, tensor);
    ASSERT_TRUE(t->defined()) << "missing " << tensor;
    EXPECT_EQ(t->scalar_type(), want.scalar_type()) << tensor;
    ASSERT_EQ(t->sizes(), want.sizes()) << tensor;
    const double diff = (t->to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
    if (want.is_floating_point()) {
      std::printf("[ golden ] %s %s %s: max |diff| = %.9g\n", kModel, name.c_str(), tensor, diff);
    }
    EXPECT_EQ(diff, 0.0) << tensor;
  }
  EXPECT_EQ(defined, file.tensors().size());
  EXPECT_FALSE(in.image_grid_thw.defined());
  EXPECT_FALSE(in.pixel_values_videos.defined());

  // The layout: 1-D positions 0..S-1, the <image> (1000) tokens numbered 16 per image with their
  // cell on the 4x4 patch grid.
  const at::Tensor ids = in.input_ids;
  const std::int64_t s = ids.size(1);
  ASSERT_TRUE(got.layout.defined());
  EXPECT_TRUE(at::equal(got.layout.positions, at::arange(s, at::kLong).view({1, 1, s})));
  const at::Tensor image_tokens = ids.eq(1000);
  EXPECT_TRUE(at::equal(got.layout.modality.ne(0), image_tokens));
  const at::Tensor media = got.layout.media_index.masked_select(image_tokens);
  const at::Tensor cells = got.layout.grid.select(2, 1).masked_select(image_tokens) * 4 +
                           got.layout.grid.select(2, 2).masked_select(image_tokens);
  const std::int64_t n = media.numel();
  EXPECT_EQ(n, 16 * static_cast<std::int64_t>(got.image_sizes.size()));
  EXPECT_TRUE(at::equal(media, at::arange(n, at::kLong).div(16, "floor")));
  EXPECT_TRUE(at::equal(cells, at::arange(n, at::kLong).remainder(16)));
}

// The case from its user text (chat mode) and from the manifest's prompt (raw mode).
void check(const std::string& name, ProcessorRequest request) {
  const auto processor = load();
  const std::string want_prompt = manifest_prompt(name);
  const auto chat = processor->process(request);
  EXPECT_EQ(chat.prompts, std::vector<std::string>{want_prompt});
  expect_case_inputs(name, chat);
  request.family = text::ChatFamily::Raw;
  request.prompt = want_prompt;
  const auto raw = processor->process(request);
  expect_case_inputs(name, raw);
}

TEST(LlavaProcessorGolden, LoadsTheCheckpoint) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  const auto p = load();
  EXPECT_EQ(p->chat_family(), text::ChatFamily::Llava15);
  EXPECT_EQ(p->eos_token_ids(), std::vector<std::int64_t>{2});
  EXPECT_EQ(p->pad_token_id(), 1001);  // <pad>
}

TEST(LlavaProcessorGolden, ImageA) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  ProcessorRequest r;
  r.prompt = "What is shown in this image?";
  r.images = {image("image_a_64x48.png")};
  check("image_a", r);
  EXPECT_EQ(load()->process(r).image_sizes,
            (std::vector<std::pair<std::int64_t, std::int64_t>>{{56, 56}}));
}

TEST(LlavaProcessorGolden, ImageB) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  ProcessorRequest r;
  r.prompt = "Describe the colors.";
  r.images = {image("image_b_97x131.png")};
  check("image_b", r);
}

TEST(LlavaProcessorGolden, TwoImages) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  ProcessorRequest r;
  r.prompt = "Compare them.";
  r.images = {image("image_a_64x48.png"), image("image_b_97x131.png")};
  check("two_images", r);
}

TEST(LlavaProcessorGolden, TextOnly) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  ProcessorRequest r;
  r.prompt = "Hello! Please count to five.";
  check("text_only", r);
}

TEST(LlavaProcessorGolden, BatchLeftPadsWithPadToken) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  // No fixture batch for LLaVA: rows must equal their single runs, right-aligned.
  const auto p = load();
  ProcessorRequest text_only, picture;
  text_only.prompt = "Hello! Please count to five.";
  picture.prompt = "Describe the colors.";
  picture.images = {image("image_b_97x131.png")};
  const auto a = p->process(text_only), b = p->process(picture);
  const auto batch = p->process_batch({text_only, picture});
  const std::int64_t la = a.inputs.input_ids.size(1), lb = b.inputs.input_ids.size(1);
  ASSERT_GT(lb, la);
  ASSERT_EQ(batch.inputs.input_ids.sizes(), (std::vector<std::int64_t>{2, lb}));
  EXPECT_TRUE(at::equal(batch.inputs.input_ids[0].narrow(0, lb - la, la), a.inputs.input_ids[0]));
  EXPECT_TRUE(at::equal(batch.inputs.input_ids[0].narrow(0, 0, lb - la),
                        at::full({lb - la}, 1001, at::kLong)));
  EXPECT_EQ(batch.inputs.attention_mask.sum().item<std::int64_t>(), la + lb);
  EXPECT_TRUE(at::equal(batch.inputs.input_ids[1], b.inputs.input_ids[0]));
  EXPECT_TRUE(at::equal(batch.inputs.pixel_values, b.inputs.pixel_values));
  // Positions count real tokens only (generation's attention_mask.cumsum - 1, padding at 1).
  EXPECT_TRUE(
      at::equal(batch.layout.positions[0][0].narrow(0, lb - la, la), at::arange(la, at::kLong)));
  EXPECT_EQ(batch.layout.positions[0][0][0].item<std::int64_t>(), 1);
  EXPECT_TRUE(at::equal(batch.layout.modality[1], b.layout.modality[0]));
}

TEST(LlavaProcessorErrorsGolden, BadRequestsAreInputErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  const auto p = load();
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one naming '" << needle << "'";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  ProcessorRequest video;
  video.prompt = "Hi";
  VideoInput v;
  v.frames = {image("image_a_64x48.png")};
  video.videos = {v};
  expect_error([&] { p->process(video); }, "takes images only");
  ProcessorRequest raw;
  raw.family = text::ChatFamily::Raw;
  raw.prompt = "USER: <image>\nHi ASSISTANT:";
  raw.images = {image("image_a_64x48.png"), image("image_b_97x131.png")};
  expect_error([&] { p->process(raw); }, "1 '<image>' placeholder but 2 images");
  raw.images.clear();
  expect_error([&] { p->process(raw); }, "0 images were given");
  ProcessorRequest empty;
  empty.prompt = "Hi";
  empty.images = {vision::Image()};
  expect_error([&] { p->process(empty); }, "image 0 is empty");
}

}  // namespace
}  // namespace glimpse::model
