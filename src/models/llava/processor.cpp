#include "models/llava/processor.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::models::llava {
namespace {

namespace fs = std::filesystem;

}  // namespace

LlavaProcessor::LlavaProcessor(const std::string& dir)
    : model::Processor(dir),
      config_(
          LlavaConfig::from_config(core::Config::load((fs::path(dir) / "config.json").string()))),
      image_processor_(clip::ImageProcessor::from_pretrained(dir)) {
  const fs::path processor_path = fs::path(dir) / "processor_config.json";
  std::error_code ec;
  if (fs::is_regular_file(processor_path, ec)) {
    const auto pc = core::Config::load(processor_path.string());
    image_token_ = pc.get_string("image_token", image_token_);
    // LlavaProcessor counts (crop / patch_size)^2 + num_additional_image_tokens, minus one for the
    // "default" strategy; the model scatters features_per_image() features. Both must agree.
    if (pc.has("patch_size")) {
      const std::int64_t patch = pc.get_int("patch_size");
      if (patch <= 0) pc.fail("patch_size", "must be positive");
      const std::int64_t side = config_.vision.image_size / patch;
      std::int64_t count = side * side + pc.get_int("num_additional_image_tokens", 0);
      if (pc.get_string("vision_feature_select_strategy", "default") == "default") --count;
      if (count != config_.features_per_image()) {
        pc.fail("patch_size", "the processor would expand <image> to " + std::to_string(count) +
                                  " tokens but the model has " +
                                  std::to_string(config_.features_per_image()) +
                                  " features per image");
      }
    }
  }
  const auto found = tokenizer().token_to_id(image_token_);
  if (!found || *found != config_.image_token_index) {
    throw ConfigError((fs::path(dir) / "config.json").string() + ": the tokenizer gives '" +
                      image_token_ + "' id " +
                      (found ? std::to_string(*found) : std::string("none")) +
                      " but image_token_index is " + std::to_string(config_.image_token_index));
  }
}

model::ProcessedInputs LlavaProcessor::process(const model::ProcessorRequest& request) const {
  if (!request.videos.empty()) {
    throw InputError("LLaVA-1.5 takes images only, but " + std::to_string(request.videos.size()) +
                     " video(s) were given");
  }
  model::ProcessedInputs out;
  const std::string prompt = render(request, image_token_, "");

  std::vector<at::Tensor> pixels;
  for (std::size_t i = 0; i < request.images.size(); ++i) {
    const std::string what = "image " + std::to_string(i);
    check_image(request.images[i], what);
    try {
      pixels.push_back(image_processor_.preprocess({request.images[i]}));
    } catch (const InputError& e) {
      throw InputError(what + ": " + e.what());
    }
  }
  auto& in = out.inputs;
  if (!pixels.empty()) {
    in.pixel_values = pixels.size() == 1 ? pixels[0] : at::cat(pixels, 0);
    const std::int64_t h = in.pixel_values.size(2), w = in.pixel_values.size(3);
    if (h != config_.vision.image_size || w != config_.vision.image_size) {
      throw ConfigError("preprocessor_config.json: images come out " + std::to_string(w) + "x" +
                        std::to_string(h) + " but the vision tower takes " +
                        std::to_string(config_.vision.image_size) + "x" +
                        std::to_string(config_.vision.image_size));
    }
    out.image_sizes.assign(pixels.size(), {h, w});
  }

  // LlavaProcessor.__call__: sample.replace(image_token, image_token * num_image_tokens).
  const std::int64_t n = config_.features_per_image();
  std::string expanded;
  std::size_t pos = 0;
  for (auto hit = prompt.find(image_token_); hit != std::string::npos;
       hit = prompt.find(image_token_, pos)) {
    expanded.append(prompt, pos, hit - pos);
    for (std::int64_t k = 0; k < n; ++k) expanded += image_token_;
    pos = hit + image_token_.size();
  }
  expanded.append(prompt, pos, std::string::npos);
  tokenize(expanded, in, request.limits);

  out.prompts.push_back(prompt);
  out.layout = token_layout(in);
  return out;
}

model::TokenLayout LlavaProcessor::token_layout(const model::ForwardInputs& inputs) const {
  // As the model at prefill (llama/modeling.cpp CausalLM::run, generation): text everywhere,
  // positions attention_mask.cumsum - 1 with padding at 1, then the <image> runs marked.
  const at::Tensor& ids = inputs.input_ids;
  const std::int64_t b = ids.size(0), s = ids.size(1);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const at::Tensor mask =
      inputs.attention_mask.defined() ? inputs.attention_mask : at::ones({b, s}, i64);
  model::TokenLayout layout;
  layout.modality = at::zeros({b, s}, at::TensorOptions().dtype(at::kChar));
  layout.media_index = at::full({b, s}, -1, i64);
  layout.grid = at::full({b, s, 3}, -1, i64);
  layout.original_index = at::arange(s, i64).view({1, s}).repeat({b, 1});
  layout.positions = (mask.cumsum(1) - 1).masked_fill(mask.eq(0), 1).unsqueeze(0);
  mark_image_tokens(config_, ids, layout);
  return layout;
}

}  // namespace glimpse::models::llava
