// Processor: what every family shares (tokenizer, chat template, eos and pad ids, prompt
// rendering, left-padded batches) and the choice of implementation by config.json.
#include "glimpse/model/processor.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/registry.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::model {
namespace {

namespace fs = std::filesystem;

// A special token of tokenizer_config.json / special_tokens_map.json: a string, or an AddedToken
// object with "content"; empty when absent or null.
std::string special_token(const std::string& dir, const std::string& key) {
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path path = fs::path(dir) / name;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) continue;
    const auto config = core::Config::load(path.string());
    if (!config.has(key)) continue;
    const auto& v = config.raw().at(key);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v.at("content").is_string()) {
      return v.at("content").get<std::string>();
    }
    config.fail(key, "expected a token string or an object with \"content\"");
  }
  return {};
}

std::size_t count_occurrences(const std::string& text, const std::string& needle) {
  if (needle.empty()) return 0;
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::string plural(std::size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

at::Tensor cat_defined(const std::vector<at::Tensor>& parts) {
  std::vector<at::Tensor> defined;
  for (const auto& t : parts) {
    if (t.defined()) defined.push_back(t);
  }
  if (defined.empty()) return {};
  return defined.size() == 1 ? defined[0] : at::cat(defined, 0);
}

}  // namespace

Processor::~Processor() = default;

Processor::Processor(const std::string& dir) {
  tokenizer_ = std::make_shared<const text::Tokenizer>(text::Tokenizer::load(dir));
  try {
    chat_family_ = text::ChatTemplate::from_checkpoint(dir).family();
  } catch (const InputError& e) {
    // No template: requests must choose the raw mode (or a family) themselves.
    template_error_ = e.what();
  } catch (const UnsupportedError& e) {
    template_error_ = e.what();
  }
  const auto generation = generate::GenerationConfig::from_checkpoint(dir);
  eos_token_ids_ = generation.eos_token_ids;
  if (eos_token_ids_.empty()) {
    const std::string eos = special_token(dir, "eos_token");
    if (!eos.empty()) {
      if (const auto id = tokenizer_->token_to_id(eos)) eos_token_ids_.push_back(*id);
    }
  }
  // transformers pads with tokenizer.pad_token_id; generation_config / config.json as fallbacks.
  const std::string pad = special_token(dir, "pad_token");
  if (!pad.empty()) {
    if (const auto id = tokenizer_->token_to_id(pad)) pad_token_id_ = *id;
  }
  if (pad_token_id_ < 0) pad_token_id_ = generation.pad_token_id;
  if (pad_token_id_ < 0) {
    const fs::path config_path = fs::path(dir) / "config.json";
    std::error_code ec;
    if (fs::is_regular_file(config_path, ec)) {
      pad_token_id_ = core::Config::load(config_path.string()).get_int("pad_token_id", -1);
    }
  }
}

GridPlacement GridPlacement::whole(const vision::Image& picture) {
  return {0, 0, static_cast<double>(picture.width), static_cast<double>(picture.height)};
}

GridPlacement Processor::grid_placement(int width, int height) const {
  return {0, 0, static_cast<double>(width), static_cast<double>(height)};
}

std::unique_ptr<Processor> Processor::load(const std::string& dir) {
  std::string config_path;
  const ModelEntry& entry = ModelRegistry::instance().entry_for(dir, &config_path);
  if (!entry.processor) {
    throw UnsupportedError(config_path +
                           ": this model has no processor (a text-only model takes token ids)");
  }
  return entry.processor(dir);
}

std::string Processor::render(const ProcessorRequest& request, const std::string& image_token,
                              const std::string& video_token) const {
  if (!request.messages.empty() && !request.prompt.empty()) {
    throw InputError("a request takes either messages or a prompt, not both");
  }
  if (!request.family && !template_error_.empty()) {
    throw InputError(template_error_ + " (or set the request's family)");
  }
  const ProcessorLimits& limits = request.limits;
  if (limits.max_image_pixels < 1 || limits.max_video_frames < 1 || limits.max_tokens < 0)
    throw InputError(
        "request limits: max_image_pixels and max_video_frames must be positive, max_tokens >= 0");
  // Checked before any image is processed (an allocation sized from its pixels).
  auto check_pixels = [&](const vision::Image& image, const std::string& what) {
    if (image.width > 0 && image.height > 0 && image.width > limits.max_image_pixels / image.height)
      throw InputError(what + ": " + std::to_string(image.width) + "x" +
                       std::to_string(image.height) + " pixels exceed the request's limit of " +
                       std::to_string(limits.max_image_pixels) + " (max_image_pixels)");
  };
  for (std::size_t i = 0; i < request.images.size(); ++i)
    check_pixels(request.images[i], "image " + std::to_string(i));
  for (std::size_t i = 0; i < request.videos.size(); ++i) {
    const auto& frames = request.videos[i].frames;
    check_frames(frames.size(), limits, "video " + std::to_string(i));
    for (std::size_t f = 0; f < frames.size(); ++f)
      check_pixels(frames[f], "video " + std::to_string(i) + " frame " + std::to_string(f));
  }
  const text::ChatFamily family = request.family.value_or(chat_family_);
  const auto chat = text::ChatTemplate::for_family(family);
  const std::size_t n_images = request.images.size(), n_videos = request.videos.size();
  std::string prompt;
  if (!request.messages.empty()) {
    std::size_t image_parts = 0, video_parts = 0;
    for (const auto& m : request.messages) {
      for (const auto& part : m.content) {
        image_parts += part.kind == text::ContentPart::Kind::Image;
        video_parts += part.kind == text::ContentPart::Kind::Video;
      }
    }
    if (image_parts != n_images || video_parts != n_videos) {
      throw InputError("the messages hold " + plural(image_parts, "image part") + " and " +
                       plural(video_parts, "video part") + " but " + plural(n_images, "image") +
                       " and " + plural(n_videos, "video") + " were given");
    }
    prompt = chat.apply(request.messages, request.chat);
  } else if (family == text::ChatFamily::Raw) {
    prompt = request.prompt;
  } else {
    // One user turn: images, then videos, then the text (the model cards' order).
    text::ChatMessage turn{"user", {}};
    for (std::size_t i = 0; i < n_images; ++i) turn.content.push_back(text::ContentPart::image());
    for (std::size_t i = 0; i < n_videos; ++i) turn.content.push_back(text::ContentPart::video());
    if (!request.prompt.empty()) {
      turn.content.push_back(text::ContentPart::make_text(request.prompt));
    }
    prompt = chat.apply({turn}, request.chat);
  }
  // The reference expands every placeholder of the text, so the counts must agree exactly.
  const std::string where =
      family == text::ChatFamily::Raw ? "the raw prompt" : "the rendered prompt";
  const std::size_t images_found = count_occurrences(prompt, image_token);
  if (images_found != n_images) {
    throw InputError(where + " holds " + plural(images_found, "'" + image_token + "' placeholder") +
                     " but " + plural(n_images, "image") + (n_images == 1 ? " was" : " were") +
                     " given (one placeholder per image)");
  }
  const std::size_t videos_found = count_occurrences(prompt, video_token);
  if (!video_token.empty() && videos_found != n_videos) {
    throw InputError(where + " holds " + plural(videos_found, "'" + video_token + "' placeholder") +
                     " but " + plural(n_videos, "video") + (n_videos == 1 ? " was" : " were") +
                     " given (one placeholder per video)");
  }
  return prompt;
}

void Processor::check_image(const vision::Image& image, const std::string& what) {
  if (image.empty()) {
    throw InputError(what + " is empty (" + std::to_string(image.width) + "x" +
                     std::to_string(image.height) + ")");
  }
  if (image.rgb.size() != image.row_bytes() * static_cast<std::size_t>(image.height)) {
    throw InputError(what + ": its buffer holds " + std::to_string(image.rgb.size()) +
                     " bytes, not width * height * 3 = " +
                     std::to_string(image.row_bytes() * static_cast<std::size_t>(image.height)));
  }
}

void Processor::check_frames(std::size_t frames, const ProcessorLimits& limits,
                             const std::string& what) {
  if (static_cast<std::int64_t>(std::min<std::size_t>(frames, INT64_MAX)) > limits.max_video_frames)
    throw InputError(what + ": " + std::to_string(frames) +
                     " frames exceed the request's limit of " +
                     std::to_string(limits.max_video_frames) + " (max_video_frames)");
}

void Processor::tokenize(const std::string& expanded, ForwardInputs& inputs,
                         const ProcessorLimits& limits) const {
  // The reference processors call the tokenizer with its default add_special_tokens=True (BOS
  // for LLaVA's LlamaTokenizer, nothing for Qwen2's).
  const std::vector<text::TokenId> ids = tokenizer_->encode_ids(expanded, true);
  if (ids.empty()) throw InputError("the prompt is empty: it gives no tokens");
  const auto n = static_cast<std::int64_t>(ids.size());
  if (limits.max_tokens > 0 && n > limits.max_tokens)
    throw InputError("the prompt has " + std::to_string(n) +
                     " tokens after expanding the placeholders, more than the request's limit of " +
                     std::to_string(limits.max_tokens) + " (max_tokens)");
  inputs.input_ids = at::tensor(ids, at::kLong).view({1, n});
  inputs.attention_mask = at::ones({1, n}, at::kLong);
}

ProcessedInputs Processor::process_batch(const std::vector<ProcessorRequest>& requests) const {
  if (requests.empty()) throw InputError("process_batch: no requests");
  std::vector<ProcessedInputs> rows;
  rows.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    try {
      rows.push_back(process(requests[i]));
    } catch (const InputError& e) {
      throw InputError("request " + std::to_string(i) + ": " + e.what());
    }
  }
  if (rows.size() == 1) return std::move(rows[0]);
  const auto b = static_cast<std::int64_t>(rows.size());
  std::int64_t s = 0;
  for (const auto& r : rows) s = std::max(s, r.inputs.input_ids.size(1));
  ProcessedInputs out;
  auto& in = out.inputs;
  // tokenizer.pad(padding_side="left"): pads first, attention_mask 0 on them.
  in.input_ids = at::full({b, s}, pad_token_id_, at::kLong);
  in.attention_mask = at::zeros({b, s}, at::kLong);
  std::vector<at::Tensor> pixels, image_grids, videos, video_grids, seconds;
  for (std::int64_t row = 0; row < b; ++row) {
    const auto& r = rows[static_cast<std::size_t>(row)];
    const std::int64_t n = r.inputs.input_ids.size(1);
    if (n < s && pad_token_id_ < 0) {
      throw InputError(
          "process_batch: the rows differ in length and the tokenizer has no pad token");
    }
    in.input_ids[row].narrow(0, s - n, n).copy_(r.inputs.input_ids[0]);
    in.attention_mask[row].narrow(0, s - n, n).copy_(r.inputs.attention_mask[0]);
    pixels.push_back(r.inputs.pixel_values);
    image_grids.push_back(r.inputs.image_grid_thw);
    videos.push_back(r.inputs.pixel_values_videos);
    video_grids.push_back(r.inputs.video_grid_thw);
    seconds.push_back(r.inputs.second_per_grid_ts);
    out.prompts.insert(out.prompts.end(), r.prompts.begin(), r.prompts.end());
    out.image_sizes.insert(out.image_sizes.end(), r.image_sizes.begin(), r.image_sizes.end());
    out.video_sizes.insert(out.video_sizes.end(), r.video_sizes.begin(), r.video_sizes.end());
  }
  in.pixel_values = cat_defined(pixels);
  in.image_grid_thw = cat_defined(image_grids);
  in.pixel_values_videos = cat_defined(videos);
  in.video_grid_thw = cat_defined(video_grids);
  in.second_per_grid_ts = cat_defined(seconds);
  out.layout = token_layout(in);
  return out;
}

}  // namespace glimpse::model
