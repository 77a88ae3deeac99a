// Chat templates: the built-in renderings reproduce the prompts of the fixture manifests, and
// checkpoints' templates are recognised.
#include "glimpse/text/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "glimpse/core/error.h"
#include "test_util.h"

namespace glimpse::text {
namespace {

using nlohmann::json;
using Part = ContentPart;

json manifest(const std::string& family) {
  std::ifstream in(test::fixtures_dir() + "/" + family + "/manifest.json");
  return json::parse(in);
}

// The user turn of each fixture case, as the fixture generator built it.
std::vector<ChatMessage> qwen_case(const std::string& name, int row = 0) {
  if (name == "image_a")
    return {{"user", {Part::image(), Part::make_text("Describe this image.")}}};
  if (name == "two_images") {
    return {{"user", {Part::image(), Part::image(), Part::make_text("Compare the two pictures.")}}};
  }
  if (name == "video")
    return {{"user", {Part::video(), Part::make_text("What happens in this video?")}}};
  if (name == "batch_left_pad" && row == 1) {
    return {{"user", {Part::image(), Part::make_text("What is in the picture?")}}};
  }
  return {ChatMessage::text("user", "Hello! Please count to five.")};
}

TEST(ChatTemplateGolden, QwenPromptsMatchTheManifests) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string family : {"tiny-qwen2-vl", "tiny-qwen2.5-vl"}) {
    const auto tmpl = ChatTemplate::from_checkpoint(test::fixtures_dir() + "/" + family + "/model");
    EXPECT_EQ(tmpl.family(), ChatFamily::Qwen2VL);
    const json cases = manifest(family).at("cases");
    for (const auto& [name, c] : cases.items()) {
      const auto& prompts = c.at("prompt_text");
      for (std::size_t r = 0; r < prompts.size(); ++r) {
        SCOPED_TRACE(family + "/" + name);
        EXPECT_EQ(tmpl.apply(qwen_case(name, static_cast<int>(r))), prompts[r].get<std::string>());
      }
    }
  }
}

TEST(ChatTemplateGolden, LlavaPromptsMatchTheManifest) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto tmpl = ChatTemplate::from_checkpoint(test::fixtures_dir() + "/tiny-llava-1.5/model");
  EXPECT_EQ(tmpl.family(), ChatFamily::Llava15);
  const auto m = manifest("tiny-llava-1.5").at("cases");
  EXPECT_EQ(
      tmpl.apply({{"user", {Part::image(), Part::make_text("What is shown in this image?")}}}),
      m.at("image_a").at("prompt_text").get<std::string>());
  EXPECT_EQ(tmpl.apply({{"user", {Part::image(), Part::make_text("Describe the colors.")}}}),
            m.at("image_b").at("prompt_text").get<std::string>());
  // The template puts every image first, whatever the order of the parts.
  EXPECT_EQ(
      tmpl.apply({{"user", {Part::image(), Part::make_text("Compare them."), Part::image()}}}),
      m.at("two_images").at("prompt_text").get<std::string>());
  EXPECT_EQ(tmpl.apply_text("Hello! Please count to five."),
            m.at("text_only").at("prompt_text").get<std::string>());
}

TEST(ChatTemplateTest, QwenTurnsSystemPromptAndVisionIds) {
  const auto t = ChatTemplate::for_family(ChatFamily::Qwen2VL);
  const std::vector<ChatMessage> chat = {
      ChatMessage::text("system", "Be brief."),
      {"user", {Part::image(), Part::video(), Part::make_text("What?")}},
      ChatMessage::text("assistant", "A cat."),
      ChatMessage::text("user", "Sure?")};
  ChatOptions options;
  options.add_vision_id = true;
  EXPECT_EQ(t.apply(chat, options),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>"
            "Video 1: <|vision_start|><|video_pad|><|vision_end|>What?<|im_end|>\n"
            "<|im_start|>assistant\nA cat.<|im_end|>\n"
            "<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\n");
  options.add_generation_prompt = false;
  EXPECT_EQ(t.apply({ChatMessage::text("user", "Hi")}, options),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(t.apply({}), "<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, LlavaTurns) {
  const auto t = ChatTemplate::for_family(ChatFamily::Llava15);
  EXPECT_EQ(t.apply({ChatMessage::text("user", "Hi"), ChatMessage::text("assistant", "Hello"),
                     ChatMessage::text("user", "Bye")}),
            "USER: Hi ASSISTANT: Hello USER: Bye ASSISTANT:");
  EXPECT_EQ(t.apply({ChatMessage::text("system", "Sys")}, {false, false}), "Sys ");
}

TEST(ChatTemplateTest, RawAndRecognition) {
  const auto raw = ChatTemplate::for_family(ChatFamily::Raw);
  EXPECT_EQ(raw.apply_text("as <is>"), "as <is>");
  EXPECT_EQ(raw.apply({ChatMessage::text("user", "a"), ChatMessage::text("user", "b")}), "ab");
  EXPECT_THROW(raw.apply({{"user", {Part::image()}}}), InputError);
  try {
    ChatTemplate::recognise("{{ bos_token }}{% for m in messages %}[INST]{% endfor %}", "x.json");
    FAIL() << "no error";
  } catch (const UnsupportedError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("x.json"), std::string::npos);
    EXPECT_NE(m.find("Qwen2-VL"), std::string::npos);
    EXPECT_NE(m.find("LLaVA-1.5"), std::string::npos);
  }
  EXPECT_EQ(chat_family_name(ChatFamily::Llava15), "llava-1.5");
}

TEST(ChatTemplateTest, CheckpointFilesInOrder) {
  test::TempDir dir;
  EXPECT_THROW(ChatTemplate::from_checkpoint(dir.path().string()), InputError);
  std::ofstream(dir.file("tokenizer_config.json"))
      << json{{"chat_template", "USER: {{ message['role'].upper() }} <image> ASSISTANT:"}}.dump();
  EXPECT_EQ(ChatTemplate::from_checkpoint(dir.path().string()).family(), ChatFamily::Llava15);
  std::ofstream(dir.file("chat_template.json"))
      << json{{"chat_template",
               json::array(
                   {{{"name", "default"},
                     {"template", "<|im_start|><|vision_start|><|image_pad|><|vision_end|>"}}})}}
             .dump();
  EXPECT_EQ(ChatTemplate::from_checkpoint(dir.path().string()).family(), ChatFamily::Qwen2VL);
}

}  // namespace
}  // namespace glimpse::text
