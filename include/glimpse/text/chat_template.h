#pragma once

// Chat prompts for the supported model families, without a Jinja engine.
//
// A checkpoint's chat template (chat_template.json "chat_template", else chat_template.jinja,
// else tokenizer_config.json "chat_template") is recognised by the markers its family's template
// writes:
//  * Qwen2-VL / Qwen2.5-VL ChatML: "<|im_start|>" and
//  "<|vision_start|><|image_pad|><|vision_end|>";
//  * LLaVA-1.5: "ASSISTANT:" and "<image>" and a role-to-upper-case prefix ("upper()" or "USER:").
// Anything else is an error that names the known families; ChatFamily::Raw passes a prompt
// through untouched. The rendering then follows the family's template exactly (see
// docs/TOKENIZERS.md).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glimpse::text {

enum class ChatFamily { Raw, Qwen2VL, Llava15 };

// "raw", "qwen2-vl", "llava-1.5".
std::string chat_family_name(ChatFamily family);

struct ContentPart {
  enum class Kind { Text, Image, Video };
  Kind kind = Kind::Text;
  std::string text;  // for Kind::Text

  static ContentPart make_text(std::string text) { return {Kind::Text, std::move(text)}; }
  static ContentPart image() { return {Kind::Image, {}}; }
  static ContentPart video() { return {Kind::Video, {}}; }
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::vector<ContentPart> content;

  static ChatMessage text(std::string role, std::string text) {
    return {std::move(role), {ContentPart::make_text(std::move(text))}};
  }
};

struct ChatOptions {
  bool add_generation_prompt = true;
  // Qwen2-VL's add_vision_id: "Picture 1: " / "Video 1: " before each placeholder.
  bool add_vision_id = false;
};

class ChatTemplate {
 public:
  static ChatTemplate for_family(ChatFamily family);
  // Recognises a Jinja template's family; `source` names it in messages. Throws
  // UnsupportedError for an unknown template.
  static ChatTemplate recognise(std::string_view jinja, const std::string& source);
  // Reads the template of a checkpoint folder (see above). Throws InputError when it has none.
  static ChatTemplate from_checkpoint(const std::string& dir);

  ChatFamily family() const { return family_; }

  // The prompt for `messages`. Raw: the text parts joined as they are; images and videos are an
  // InputError there (raw mode cannot place their placeholders).
  std::string apply(const std::vector<ChatMessage>& messages,
                    const ChatOptions& options = {}) const;
  // The prompt of a raw string (Raw), or of one user turn holding `text` (other families).
  std::string apply_text(const std::string& text, const ChatOptions& options = {}) const;

 private:
  explicit ChatTemplate(ChatFamily family) : family_(family) {}
  ChatFamily family_;
};

}  // namespace glimpse::text
