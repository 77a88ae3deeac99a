// The Qwen2-VL / Qwen2.5-VL Processor against transformers 4.50 Qwen2VLProcessor /
// Qwen2_5_VLProcessor outputs (cases/*.inputs.safetensors): from the raw images and the user text
// of each case, the rendered prompt, input_ids, attention_mask, pixel tensors, grids,
// second_per_grid_ts and the layout's positions (= position_ids of get_rope_index). Then the
// errors a request can cause.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/model/processor.h"
#include "glimpse/text/tokenizer.h"
#include "glimpse/vision/image_io.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

using nlohmann::json;

std::string fixture(const std::string& rel) {
  return test::fixtures_dir() + "/" + rel;
}

vision::Image image(const std::string& name) {
  return vision::load_image(fixture("images/" + name));
}

vision::Image image_a() {
  return image("image_a_64x48.png");
}
vision::Image image_b() {
  return image("image_b_97x131.png");
}

std::vector<vision::Image> video_frames() {
  std::vector<vision::Image> frames;
  for (int i = 0; i < 4; ++i)
    frames.push_back(image("video_frame" + std::to_string(i) + "_70x56.png"));
  return frames;
}

json manifest(const std::string& model) {
  std::ifstream in(fixture(model + "/manifest.json"));
  return json::parse(in);
}

// The tensors a ForwardInputs holds, by the reference's names.
std::map<std::string, at::Tensor> named(const ForwardInputs& in) {
  std::map<std::string, at::Tensor> out;
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"input_ids", &in.input_ids},
      {"attention_mask", &in.attention_mask},
      {"pixel_values", &in.pixel_values},
      {"image_grid_thw", &in.image_grid_thw},
      {"pixel_values_videos", &in.pixel_values_videos},
      {"video_grid_thw", &in.video_grid_thw},
      {"second_per_grid_ts", &in.second_per_grid_ts}};
  for (const auto& [name, t] : all) {
    if (t->defined()) out[name] = *t;
  }
  return out;
}

// Every processor tensor of the case (all but position_ids / rope_deltas, which come from the
// model) equals ours exactly, with the same dtype; we produce nothing more.
void expect_case_inputs(const std::string& model, const std::string& name,
                        const ProcessedInputs& got) {
  SCOPED_TRACE(model + "/" + name);
  const auto file =
      core::SafetensorsFile::open(fixture(model + "/cases/" + name + ".inputs.safetensors"));
  auto ours = named(got.inputs);
  for (const auto& info : file.tensors()) {
    const std::string& want_name = info.name;
    if (want_name == "position_ids" || want_name == "rope_deltas") continue;
    const at::Tensor want = core::load_tensor(file, want_name);
    ASSERT_TRUE(ours.count(want_name)) << "missing " << want_name;
    const at::Tensor g = ours.at(want_name);
    ours.erase(want_name);
    EXPECT_EQ(g.scalar_type(), want.scalar_type()) << want_name;
    ASSERT_EQ(g.sizes(), want.sizes()) << want_name;
    const double diff = (g.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
    if (want.is_floating_point()) {
      std::printf("[ golden ] %s %s %s: max |diff| = %.9g\n", model.c_str(), name.c_str(),
                  want_name.c_str(), diff);
    }
    EXPECT_EQ(diff, 0.0) << want_name;
  }
  for (const auto& [extra, t] : ours) ADD_FAILURE() << "not in the fixture: " << extra;

  // The layout is the one get_rope_index gives: positions = position_ids.
  const at::Tensor position_ids = core::load_tensor(file, "position_ids");
  ASSERT_TRUE(got.layout.defined());
  ASSERT_EQ(got.layout.positions.sizes(), position_ids.sizes());
  EXPECT_TRUE(at::equal(got.layout.positions, position_ids))
      << got.layout.positions << " vs " << position_ids;
  // Every placeholder token is visual, numbered by its image or video, with a grid cell.
  const at::Tensor ids = got.inputs.input_ids;
  const at::Tensor visual = ids.eq(1012).logical_or(ids.eq(1013));
  EXPECT_TRUE(at::equal(got.layout.modality.ne(0), visual));
  EXPECT_TRUE(at::equal(got.layout.media_index.ge(0), visual));
  EXPECT_TRUE(at::equal(got.layout.grid.select(2, 1).ge(0), visual));
}

class QwenProcessorGolden : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& model() const { return GetParam(); }
  std::unique_ptr<Processor> load() const { return Processor::load(fixture(model() + "/model")); }
  std::vector<std::string> prompts(const std::string& name) const {
    return manifest(model()).at("cases").at(name).at("prompt_text").get<std::vector<std::string>>();
  }
  // The case from its user text (chat mode), and from the manifest's prompt (raw mode).
  void check(const std::string& name, ProcessorRequest request) const {
    const auto processor = load();
    const auto want_prompts = prompts(name);
    ASSERT_EQ(want_prompts.size(), 1u);
    const auto chat = processor->process(request);
    EXPECT_EQ(chat.prompts, want_prompts);
    expect_case_inputs(model(), name, chat);

    request.family = text::ChatFamily::Raw;
    request.prompt = want_prompts[0];
    const auto raw = processor->process(request);
    EXPECT_EQ(raw.prompts, want_prompts);
    expect_case_inputs(model(), name, raw);
  }
};

TEST_P(QwenProcessorGolden, LoadsTheCheckpoint) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto processor = load();
  EXPECT_EQ(processor->chat_family(), text::ChatFamily::Qwen2VL);
  EXPECT_EQ(processor->eos_token_ids(), (std::vector<std::int64_t>{1002, 1000}));
  EXPECT_EQ(processor->pad_token_id(), 1000);
  EXPECT_EQ(processor->tokenizer().token_to_id("<|image_pad|>"), 1012);
}

TEST_P(QwenProcessorGolden, ImageA) {
  GLIMPSE_REQUIRE_FIXTURES();
  ProcessorRequest r;
  r.prompt = "Describe this image.";
  r.images = {image_a()};
  check("image_a", r);
  const auto out = load()->process(r);
  // smart_resize takes 64x48 to 84x84 (grid 6x6).
  EXPECT_EQ(out.image_sizes, (std::vector<std::pair<std::int64_t, std::int64_t>>{{84, 84}}));
  EXPECT_TRUE(out.video_sizes.empty());
}

TEST_P(QwenProcessorGolden, TwoImages) {
  GLIMPSE_REQUIRE_FIXTURES();
  ProcessorRequest r;
  r.prompt = "Compare the two pictures.";
  r.images = {image_a(), image_b()};
  check("two_images", r);
  const auto out = load()->process(r);
  EXPECT_EQ(out.image_sizes,
            (std::vector<std::pair<std::int64_t, std::int64_t>>{{84, 84}, {112, 56}}));
  // Image 1's 8 tokens are numbered 1 on an 4x2 merged grid.
  const at::Tensor second = out.layout.media_index.eq(1);
  EXPECT_EQ(second.sum().item<std::int64_t>(), 8);
  EXPECT_EQ(out.layout.grid.select(2, 1).masked_select(second).max().item<std::int64_t>(), 3);
  EXPECT_EQ(out.layout.grid.select(2, 2).masked_select(second).max().item<std::int64_t>(), 1);
}

TEST_P(QwenProcessorGolden, TextOnly) {
  GLIMPSE_REQUIRE_FIXTURES();
  ProcessorRequest r;
  r.prompt = "Hello! Please count to five.";
  check("text_only", r);
}

TEST_P(QwenProcessorGolden, VideoFrames) {
  GLIMPSE_REQUIRE_FIXTURES();
  ProcessorRequest r;
  r.prompt = "What happens in this video?";
  VideoInput v;
  v.frames = video_frames();
  v.fps = 2.0;  // the fixture's processor call
  r.videos = {v};
  check("video", r);
  const auto out = load()->process(r);
  EXPECT_EQ(out.video_sizes, (std::vector<std::pair<std::int64_t, std::int64_t>>{{84, 84}}));
  EXPECT_EQ(out.layout.modality.eq(static_cast<int>(Modality::Video)).sum().item<std::int64_t>(),
            18);
}

TEST_P(QwenProcessorGolden, MessagesGiveTheSameInputs) {
  GLIMPSE_REQUIRE_FIXTURES();
  ProcessorRequest r;
  r.messages = {{"user",
                 {text::ContentPart::image(), text::ContentPart::image(),
                  text::ContentPart::make_text("Compare the two pictures.")}}};
  r.images = {image_a(), image_b()};
  const auto out = load()->process(r);
  EXPECT_EQ(out.prompts, prompts("two_images"));
  expect_case_inputs(model(), "two_images", out);
}

TEST_P(QwenProcessorGolden, BatchLeftPad) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto processor = load();
  ProcessorRequest text_only, picture;
  text_only.prompt = "Hello! Please count to five.";
  picture.prompt = "What is in the picture?";
  picture.images = {image_b()};
  const auto out = processor->process_batch({text_only, picture});
  EXPECT_EQ(out.prompts, prompts("batch_left_pad"));
  expect_case_inputs(model(), "batch_left_pad", out);
  EXPECT_EQ(out.image_sizes, (std::vector<std::pair<std::int64_t, std::int64_t>>{{112, 56}}));
  // Row 0 is padded on the left with the pad token.
  EXPECT_EQ(out.inputs.input_ids[0][0].item<std::int64_t>(), processor->pad_token_id());
  EXPECT_EQ(out.inputs.attention_mask[0][0].item<std::int64_t>(), 0);
  // A batch of one is process().
  const auto one = processor->process_batch({picture});
  EXPECT_TRUE(at::equal(one.inputs.input_ids, processor->process(picture).inputs.input_ids));
}

INSTANTIATE_TEST_SUITE_P(Qwen, QwenProcessorGolden,
                         ::testing::Values("tiny-qwen2-vl", "tiny-qwen2.5-vl"),
                         [](const auto& info) {
                           return info.param == "tiny-qwen2-vl" ? "Qwen2VL" : "Qwen25VL";
                         });

// Every bad request is a one-line InputError that names the problem.
template <typename F>
void expect_input_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming '" << needle << "'";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an InputError: " << e.what();
  }
}

TEST(QwenProcessorErrorsGolden, BadRequestsAreInputErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto p = Processor::load(fixture("tiny-qwen2.5-vl/model"));
  auto raw = [](std::string prompt, std::vector<vision::Image> images) {
    ProcessorRequest r;
    r.family = text::ChatFamily::Raw;
    r.prompt = std::move(prompt);
    r.images = std::move(images);
    return r;
  };
  const std::string one = "<|vision_start|><|image_pad|><|vision_end|>Hi";
  // Raw mode: placeholders and images must agree.
  expect_input_error([&] { p->process(raw(one, {image_a(), image_b()})); }, "2 images were given");
  expect_input_error([&] { p->process(raw(one, {})); }, "1 '<|image_pad|>' placeholder");
  expect_input_error([&] { p->process(raw("Hi", {image_a()})); }, "0 '<|image_pad|>'");
  expect_input_error([&] { p->process(raw("", {})); }, "empty");
  // Chat mode: a placeholder typed into the text counts too.
  ProcessorRequest typed;
  typed.prompt = "look: <|image_pad|>";
  expect_input_error([&] { p->process(typed); }, "rendered prompt holds 1");
  // Messages and media must agree; messages and a prompt exclude each other.
  ProcessorRequest m;
  m.messages = {{"user", {text::ContentPart::image(), text::ContentPart::make_text("Hi")}}};
  m.images = {image_a(), image_b()};
  expect_input_error([&] { p->process(m); }, "1 image part");
  m.images = {image_a()};
  m.prompt = "also";
  expect_input_error([&] { p->process(m); }, "either messages or a prompt");
  // Images: empty, a buffer of the wrong size, too small for smart_resize.
  ProcessorRequest bad;
  bad.prompt = "Hi";
  bad.images = {image_a(), vision::Image()};
  expect_input_error([&] { p->process(bad); }, "image 1 is empty");
  vision::Image broken(30, 30);
  broken.rgb.resize(10);
  bad.images = {broken};
  expect_input_error([&] { p->process(bad); }, "image 0: its buffer holds 10 bytes");
  bad.images = {vision::Image(10, 10)};
  expect_input_error([&] { p->process(bad); }, "image 0: ");
  // Videos: a missing file, both or neither of path and frames, a bad fps.
  ProcessorRequest vid;
  vid.prompt = "Hi";
  VideoInput missing;
  missing.path = "/nonexistent/clip.mp4";
  vid.videos = {missing};
  expect_input_error([&] { p->process(vid); }, "'/nonexistent/clip.mp4': no such file");
  VideoInput both = missing;
  both.frames = video_frames();
  vid.videos = {both};
  expect_input_error([&] { p->process(vid); }, "either a path or frames");
  vid.videos = {VideoInput{}};
  expect_input_error([&] { p->process(vid); }, "neither a path nor frames");
  VideoInput slow;
  slow.frames = video_frames();
  slow.fps = 0;
  vid.videos = {slow};
  expect_input_error([&] { p->process(vid); }, "fps must be positive");
  VideoInput empty_frame;
  empty_frame.frames = {image_a(), vision::Image()};
  vid.videos = {empty_frame};
  expect_input_error([&] { p->process(vid); }, "video 0 frame 1 is empty");
  // Batches: the row is named.
  expect_input_error([&] { p->process_batch({}); }, "no requests");
  ProcessorRequest fine;
  fine.prompt = "Hi";
  expect_input_error([&] { p->process_batch({fine, bad}); }, "request 1: image 0");
}

TEST(ProcessorLoadTest, UnknownModelsAndFolders) {
  test::TempDir dir;
  std::ofstream(dir.file("config.json")) << R"({"architectures": ["MysteryForCausalLM"],
                                               "model_type": "mystery"})";
  try {
    Processor::load(dir.path().string());
    ADD_FAILURE() << "no error";
  } catch (const UnsupportedError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MysteryForCausalLM"), std::string::npos) << what;
    EXPECT_NE(what.find("Qwen2_5_VLForConditionalGeneration"), std::string::npos) << what;
    EXPECT_NE(what.find("LlavaForConditionalGeneration"), std::string::npos) << what;
  }
  EXPECT_THROW(Processor::load(dir.file("nothing-here")), InputError);
  std::ofstream(dir.file("config.json")) << "{}";
  EXPECT_THROW(Processor::load(dir.path().string()), ConfigError);
}

TEST(QwenProcessorErrorsGolden, CheckpointWithoutTemplateNeedsRawMode) {
  GLIMPSE_REQUIRE_FIXTURES();
  // A copy of the checkpoint's small files without chat_template.json.
  test::TempDir dir;
  const auto src = std::filesystem::path(fixture("tiny-qwen2-vl/model"));
  for (const char* name : {"config.json", "preprocessor_config.json", "tokenizer.json",
                           "tokenizer_config.json", "generation_config.json"}) {
    std::filesystem::copy_file(src / name, dir.path() / name);
  }
  // tokenizer_config.json carries the template too; drop it.
  {
    std::ifstream in(dir.file("tokenizer_config.json"));
    json config = json::parse(in);
    config.erase("chat_template");
    std::ofstream(dir.file("tokenizer_config.json")) << config.dump();
  }
  const auto p = Processor::load(dir.path().string());
  ProcessorRequest r;
  r.prompt = "Hi";
  expect_input_error([&] { p->process(r); }, "no chat template");
  r.family = text::ChatFamily::Raw;
  EXPECT_EQ(p->process(r).prompts, std::vector<std::string>{"Hi"});
}

}  // namespace
}  // namespace glimpse::model
