#include "glimpse/text/chat_template.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/json_util.h"
#include "glimpse/core/error.h"
#include "text/json_node.h"

namespace glimpse::text {

namespace fs = std::filesystem;

std::string chat_family_name(ChatFamily family) {
  switch (family) {
    case ChatFamily::Raw:
      return "raw";
    case ChatFamily::Qwen2VL:
      return "qwen2-vl";
    case ChatFamily::Llava15:
      return "llava-1.5";
  }
  return "unknown";
}

ChatTemplate ChatTemplate::for_family(ChatFamily family) {
  return ChatTemplate(family);
}

ChatTemplate ChatTemplate::recognise(std::string_view jinja, const std::string& source) {
  auto has = [&](std::string_view s) { return jinja.find(s) != std::string_view::npos; };
  if (has("<|im_start|>") && has("<|vision_start|><|image_pad|><|vision_end|>")) {
    return ChatTemplate(ChatFamily::Qwen2VL);
  }
  if (has("ASSISTANT:") && has("<image>") && (has("upper()") || has("USER:"))) {
    return ChatTemplate(ChatFamily::Llava15);
  }
  throw UnsupportedError(source +
                         ": unrecognised chat template (glimpse knows the Qwen2-VL / Qwen2.5-VL "
                         "ChatML template and the LLaVA-1.5 'USER: <image>\\n... ASSISTANT:' "
                         "template; use the raw prompt mode for others)");
}

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw InputError("cannot open '" + p.string() + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "chat_template" as a string, or as a list of {"name", "template"} (the "default" one).
std::string template_text(const detail::JsonNode& node) {
  if (node.is_string()) return node.as_string();
  if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) {
      const auto item = node.at(i);
      if (item.get_string("name", "") == "default") return item.get_string("template");
    }
    node.fail("no template named \"default\"");
  }
  node.fail("expected a string or a list of named templates");
}

}  // namespace

ChatTemplate ChatTemplate::from_checkpoint(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  const auto json_path = d / "chat_template.json";
  if (fs::is_regular_file(json_path, ec)) {
    const auto value = core::read_json_file(json_path.string());
    const detail::JsonNode root(value, json_path.string());
    return recognise(template_text(root.at("chat_template")), json_path.string());
  }
  const auto jinja_path = d / "chat_template.jinja";
  if (fs::is_regular_file(jinja_path, ec)) {
    return recognise(read_file(jinja_path), jinja_path.string());
  }
  const auto config_path = d / "tokenizer_config.json";
  if (fs::is_regular_file(config_path, ec)) {
    const auto value = core::read_json_file(config_path.string());
    const detail::JsonNode root(value, config_path.string());
    if (const auto t = root.find("chat_template")) {
      return recognise(template_text(*t), config_path.string());
    }
  }
  throw InputError("no chat template in '" + dir +
                   "' (looked for chat_template.json, chat_template.jinja and "
                   "tokenizer_config.json \"chat_template\"); use the raw prompt mode");
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                const ChatOptions& options) const {
  std::string out;
  switch (family_) {
    case ChatFamily::Raw:
      for (const auto& m : messages) {
        for (const auto& part : m.content) {
          if (part.kind != ContentPart::Kind::Text) {
            throw InputError(
                "the raw prompt mode cannot place image or video placeholders; use a chat "
                "template or write the placeholders into the prompt");
          }
          out += part.text;
        }
      }
      return out;
    case ChatFamily::Qwen2VL: {
      // Qwen2-VL's chat_template.json, rendered by hand.
      int images = 0, videos = 0;
      for (std::size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (i == 0 && m.role != "system") {
          out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
        }
        out += "<|im_start|>" + m.role + "\n";
        for (const auto& part : m.content) {
          switch (part.kind) {
            case ContentPart::Kind::Image:
              ++images;
              if (options.add_vision_id) out += "Picture " + std::to_string(images) + ": ";
              out += "<|vision_start|><|image_pad|><|vision_end|>";
              break;
            case ContentPart::Kind::Video:
              ++videos;
              if (options.add_vision_id) out += "Video " + std::to_string(videos) + ": ";
              out += "<|vision_start|><|video_pad|><|vision_end|>";
              break;
            case ContentPart::Kind::Text:
              out += part.text;
              break;
          }
        }
        out += "<|im_end|>\n";
      }
      if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }
    case ChatFamily::Llava15: {
      // llava-1.5's chat_template.json: "ROLE: ", all images as "<image>\n", then every text
      // part followed by a space; videos are not rendered.
      for (const auto& m : messages) {
        if (m.role != "system") {
          std::string role = m.role;
          for (auto& c : role) {
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
          }
          out += role + ": ";
        }
        for (const auto& part : m.content) {
          if (part.kind == ContentPart::Kind::Image) out += "<image>\n";
        }
        for (const auto& part : m.content) {
          if (part.kind == ContentPart::Kind::Text) out += part.text + " ";
        }
      }
      if (options.add_generation_prompt) out += "ASSISTANT:";
      return out;
    }
  }
  return out;
}

std::string ChatTemplate::apply_text(const std::string& text, const ChatOptions& options) const {
  if (family_ == ChatFamily::Raw) return text;
  return apply({ChatMessage::text("user", text)}, options);
}

}  // namespace glimpse::text
