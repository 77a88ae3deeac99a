#include "models/llava/modeling.h"

#include <filesystem>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/model/registry.h"
#include "layers/weights.h"
#include "model/inputs.h"
#include "models/llava/processor.h"

namespace glimpse::models::llava {

LlavaConfig LlavaConfig::from_config(const core::Config& c) {
  LlavaConfig l;
  l.image_token_index = c.get_int("image_token_index", 32000);
  if (c.has("vision_feature_layer") && c.raw().at("vision_feature_layer").is_array()) {
    l.vision_feature_layers = c.get_int_list("vision_feature_layer");
    if (l.vision_feature_layers.empty())
      c.fail("vision_feature_layer", "expected at least one layer");
  } else {
    l.vision_feature_layers = {c.get_int("vision_feature_layer", -2)};
  }
  l.vision_feature_select_strategy = c.get_string("vision_feature_select_strategy", "default");
  if (l.vision_feature_select_strategy != "default" && l.vision_feature_select_strategy != "full") {
    c.fail("vision_feature_select_strategy",
           "expected default or full, found '" + l.vision_feature_select_strategy + "'");
  }
  l.projector_act = layers::parse_activation(c.get_string("projector_hidden_act", "gelu"),
                                             c.source() + ": projector_hidden_act");
  l.projector_bias = c.get_bool("multimodal_projector_bias", true);
  const auto vision = c.find_section("vision_config");
  l.vision =
      clip::VisionConfig::from_config(vision ? *vision : core::Config::parse("{}", c.source()));
  // hidden_states has num_layers + 1 entries (0 = after pre_layrnorm); Python indexing.
  const std::int64_t n = l.vision.num_layers + 1;
  for (const auto layer : l.vision_feature_layers) {
    if (layer < -n || layer >= n) {
      c.fail("vision_feature_layer", "layer " + std::to_string(layer) + " outside [" +
                                         std::to_string(-n) + ", " + std::to_string(n) + ")");
    }
  }
  return l;
}

std::int64_t LlavaConfig::features_per_image() const {
  return vision.num_patches() + (vision_feature_select_strategy == "full" ? 1 : 0);
}

LlavaForConditionalGeneration::LlavaForConditionalGeneration(
    core::Config raw, const core::Config& text, layers::WeightLoader& weights,
    const layers::DecoderConfig& decoder, const LlavaConfig& llava, c10::ScalarType dtype)
    : llama::CausalLM(std::move(raw), text, false, weights, decoder, dtype), llava_(llava) {
  vision_ = std::make_unique<clip::VisionTransformer>(weights, llava_.vision,
                                                      "vision_tower.vision_model.");
  const std::int64_t in =
      llava_.vision.hidden_size * static_cast<std::int64_t>(llava_.vision_feature_layers.size());
  linear_1_ = layers::Linear::load(weights, "multi_modal_projector.linear_1", in,
                                   decoder.hidden_size, llava_.projector_bias);
  linear_2_ = layers::Linear::load(weights, "multi_modal_projector.linear_2", decoder.hidden_size,
                                   decoder.hidden_size, llava_.projector_bias);
}

std::unique_ptr<model::Model> LlavaForConditionalGeneration::load(
    const std::string& dir, const model::LoadOptions& options) {
  auto raw = core::Config::load((std::filesystem::path(dir) / "config.json").string());
  const auto text_section = raw.find_section("text_config");
  const core::Config text = text_section ? *text_section : core::Config::parse("{}", raw.source());
  const std::string text_type = text.get_string("model_type", "llama");
  if (text_type != "llama") {
    text.fail("model_type", "unsupported LLaVA language model '" + text_type + "' (known: llama)");
  }
  layers::DecoderConfig decoder = llama::decoder_config(text, false);
  decoder.tie_word_embeddings = raw.get_bool("tie_word_embeddings", decoder.tie_word_embeddings);
  decoder.prefix = "language_model.model.";
  decoder.lm_head = "language_model.lm_head.weight";
  const LlavaConfig llava = LlavaConfig::from_config(raw);
  // On-disk names are the legacy layout; newer saves use model.* and a top-level lm_head.
  layers::WeightLoader weights(core::Checkpoint::open(dir), options.dtype,
                               options.weights == model::WeightMemory::Resident,
                               {{"language_model.model.", "model.language_model."},
                                {"language_model.lm_head.", "lm_head."},
                                {"vision_tower.", "model.vision_tower."},
                                {"multi_modal_projector.", "model.multi_modal_projector."}});
  auto model = std::make_unique<LlavaForConditionalGeneration>(raw, text, weights, decoder, llava,
                                                               options.dtype);
  model->weights_ = weights.bound();
  for (const auto& name : weights.unused()) {
    // post_layernorm is part of CLIP but not of LLaVA's features.
    if (name.find("post_layernorm") == std::string::npos &&
        name.find("lm_head") == std::string::npos) {
      GLIMPSE_LOG(Warn) << weights.path() << ": unused tensor '" << name << "'";
    }
  }
  return model;
}

at::Tensor LlavaForConditionalGeneration::selected_features(const at::Tensor& pixel_values,
                                                            bool output_attentions,
                                                            model::ForwardHooks* hooks,
                                                            clip::VisionOutput* vision) const {
  // Run only as deep as the deepest selected layer (the last layer is unused for -2).
  const std::int64_t n = llava_.vision.num_layers + 1;
  std::int64_t deepest = 0;
  for (const auto layer : llava_.vision_feature_layers) {
    deepest = std::max(deepest, layer < 0 ? layer + n : layer);
  }
  *vision =
      vision_->forward(pixel_values, output_attentions ? -1 : deepest, output_attentions, hooks);
  std::vector<at::Tensor> selected;
  for (const auto layer : llava_.vision_feature_layers) {
    at::Tensor h = vision->hidden_states[layer < 0 ? layer + n : layer];
    if (llava_.vision_feature_select_strategy == "default") h = h.narrow(1, 1, h.size(1) - 1);
    selected.push_back(h);
  }
  return selected.size() == 1 ? selected[0] : at::cat(selected, -1);
}

ImageFeatures LlavaForConditionalGeneration::image_features(const at::Tensor& pixel_values,
                                                            bool output_attentions) const {
  ImageFeatures out;
  out.features = project(selected_features(pixel_values, output_attentions, nullptr, &out.vision));
  return out;
}

model::MediaEmbeds LlavaForConditionalGeneration::embed_media(const model::ForwardInputs& in) {
  model::MediaEmbeds m;
  if (in.pixel_values.defined()) {
    const at::Tensor f = image_features(in.pixel_values).features;
    m.image_embeds = f.reshape({-1, f.size(-1)});
  }
  return m;
}

at::Tensor LlavaForConditionalGeneration::embed(const model::ForwardInputs& in,
                                                const model::TokenLayout& layout,
                                                model::ForwardHooks* hooks,
                                                layers::PromptCut& cut) const {
  if (in.pixel_values_videos.defined() || in.video_embeds.defined()) {
    throw InputError(
        std::string(in.video_embeds.defined() ? "video_embeds" : "pixel_values_videos") + ": " +
        architecture() + " takes images only, no videos");
  }
  if (hooks != nullptr && !hooks->active()) hooks = nullptr;
  at::Tensor x = decoder().embed(in.input_ids);
  const std::int64_t tokens = in.input_ids.eq(llava_.image_token_index).sum().item<std::int64_t>();
  model::VisionOut vision;
  at::Tensor keep;  // kept image tokens; undefined: all
  model::PositionPolicy policy = model::PositionPolicy::Keep;
  if (in.image_embeds.defined()) {
    if (in.image_embeds.dim() != 2 || in.image_embeds.size(0) != tokens ||
        in.image_embeds.size(1) != x.size(-1)) {
      throw InputError("image_embeds: expected [" + std::to_string(tokens) + ", " +
                       std::to_string(x.size(-1)) + "] (one row per image token), found " +
                       c10::str(in.image_embeds.sizes()));
    }
    model::check_finite(in.image_embeds, "image_embeds");
    vision.image_embeds = in.image_embeds.to(x.scalar_type());
  } else if (in.pixel_values.defined()) {
    const std::int64_t per_image = llava_.features_per_image();
    const std::int64_t features =
        in.pixel_values.dim() == 4 ? in.pixel_values.size(0) * per_image : -1;
    if (features >= 0 && tokens != features) {
      throw InputError("Image features and image tokens do not match: tokens: " +
                       std::to_string(tokens) + ", features " + std::to_string(features));
    }
    clip::VisionOutput tower;
    const at::Tensor h = selected_features(in.pixel_values, false, hooks, &tower);
    at::Tensor f;
    if (hooks) {
      // vision.features: the projector's input per image.
      model::VisionFeatures site;
      site.layout = &layout;
      for (std::int64_t m = 0; m < h.size(0); ++m) {
        site.features.push_back(h[m]);
        site.modality.push_back(model::Modality::Image);
      }
      const std::vector<at::Tensor> given = site.features;
      hooks->on_vision_features(site);
      if (site.features.size() != given.size()) {
        throw InputError("vision.features: a hook changed the number of images");
      }
      bool changed = false;
      std::vector<at::Tensor> kept;
      for (std::size_t m = 0; m < given.size(); ++m) {
        const at::Tensor k = m < site.keep.size() ? site.keep[m] : at::Tensor();
        const at::Tensor& feats = site.features[m];
        const std::string what = "vision.features: image " + std::to_string(m);
        changed = changed || k.defined() || !feats.is_same(given[m]);
        if (!feats.defined() || feats.dim() != 2 || feats.size(1) != h.size(2)) {
          throw InputError(what + ": expected features [tokens, " + std::to_string(h.size(2)) +
                           "], found " + (feats.defined() ? c10::str(feats.sizes()) : "none"));
        }
        if (!k.defined() && feats.size(0) != per_image) {
          throw InputError(what + ": a hook changed the number of features without a keep");
        }
        kept.push_back(k.defined() ? layers::kept_rows(feats, k, per_image, what) : feats);
      }
      if (changed) {
        f = project(at::cat(kept).to(h.scalar_type()));
        keep = layers::concat_keeps(site.keep, std::vector<std::int64_t>(given.size(), per_image));
        if (site.positions == model::PositionPolicy::Compact) policy = site.positions;
      }
    }
    if (!f.defined()) f = project(h);
    vision.image_embeds = f.reshape({-1, f.size(-1)}).to(x.scalar_type());
  } else {
    if (tokens > 0) {
      throw InputError("input_ids has " + std::to_string(tokens) +
                       " image tokens but pixel_values is missing");
    }
    return x;
  }
  if (hooks) {
    vision.layout = &layout;
    const at::Tensor before = vision.image_embeds;
    hooks->on_vision_out(vision);
    if (vision.video_embeds.defined() || vision.video_keep.defined()) {
      throw InputError("vision.out: video features given to a model that takes images only");
    }
    if (vision.image_keep.defined()) {
      vision.image_embeds = layers::kept_rows(vision.image_embeds, vision.image_keep,
                                              before.size(0), "vision.out: image_keep");
      const at::Tensor own = model::checked_keep(vision.image_keep, before.size(0), "image_keep");
      keep = keep.defined() ? keep.index_select(0, own) : own;
      if (vision.positions == model::PositionPolicy::Compact) policy = vision.positions;
    } else if (!vision.image_embeds.defined() || vision.image_embeds.sizes() != before.sizes()) {
      throw InputError("vision.out: a hook changed the shape of the image features");
    }
  }
  layers::drop_media_rows(in.input_ids, llava_.image_token_index, keep, cut);
  if (cut.any()) cut.positions = policy;
  const at::Tensor mask = layers::scatter_mask(in.input_ids, llava_.image_token_index, cut);
  return x.masked_scatter(mask.unsqueeze(-1).expand_as(x), vision.image_embeds.to(x.scalar_type()));
}

void mark_image_tokens(const LlavaConfig& config, const at::Tensor& input_ids,
                       model::TokenLayout& layout) {
  // Image tokens in order: image k / per_image, cell k % per_image on the patch grid (row-major;
  // with the "full" strategy cell 0 is CLS and has no grid position).
  const std::int64_t per_image = config.features_per_image();
  const std::int64_t side = config.vision.image_size / config.vision.patch_size;
  const bool has_cls = config.vision_feature_select_strategy == "full";
  const at::Tensor ids = input_ids.contiguous();
  const auto* id = ids.data_ptr<std::int64_t>();
  auto* modality = layout.modality.data_ptr<std::int8_t>();
  auto* media = layout.media_index.data_ptr<std::int64_t>();
  auto* grid = layout.grid.data_ptr<std::int64_t>();
  for (std::int64_t row = 0; row < ids.size(0); ++row) {
    std::int64_t k = 0;
    for (std::int64_t j = 0; j < ids.size(1); ++j) {
      const std::int64_t at_slot = row * ids.size(1) + j;
      if (id[at_slot] != config.image_token_index) continue;
      modality[at_slot] = static_cast<std::int8_t>(model::Modality::Image);
      media[at_slot] = k / per_image;
      const std::int64_t cell = k % per_image - (has_cls ? 1 : 0);
      if (cell >= 0) {
        grid[at_slot * 3] = 0;
        grid[at_slot * 3 + 1] = cell / side;
        grid[at_slot * 3 + 2] = cell % side;
      }
      ++k;
    }
  }
}

model::TokenLayout LlavaForConditionalGeneration::token_layout(const model::ForwardInputs& in,
                                                               std::int64_t first) const {
  model::TokenLayout layout = CausalLM::token_layout(in, first);
  if (in.input_ids.size(1) > 1)
    mark_image_tokens(llava_, in.input_ids, layout);  // not decode steps
  return layout;
}

std::optional<model::SyntheticImage> LlavaForConditionalGeneration::synthetic_image(
    const model::SyntheticImageRequest& request) const {
  const std::int64_t features = llava_.features_per_image(), size = llava_.vision.image_size;
  if (request.width > 0 || request.height > 0) {
    throw InputError("--image-size: LLaVA images are always " + std::to_string(size) + "x" +
                     std::to_string(size));
  }
  if (request.visual_tokens == 0) return std::nullopt;
  if (request.visual_tokens > 0 && request.visual_tokens != features) {
    throw InputError("--visual-tokens: this LLaVA model takes " + std::to_string(features) +
                     " tokens per image, found " + std::to_string(request.visual_tokens));
  }
  model::SyntheticImage out;
  out.placeholder_ids =
      at::full({features}, llava_.image_token_index, at::TensorOptions().dtype(at::kLong));
  out.pixel_values = at::randn({1, llava_.vision.num_channels, size, size});
  out.visual_tokens = features;
  out.vision_patches = llava_.vision.num_patches();
  out.width = out.height = size;
  return out;
}

void register_models(model::ModelRegistry& registry) {
  auto processor = [](const std::string& dir) {
    return std::unique_ptr<model::Processor>(new LlavaProcessor(dir));
  };
  registry.add("LlavaForConditionalGeneration", &LlavaForConditionalGeneration::load, processor);
  registry.add("llava", &LlavaForConditionalGeneration::load, processor);
}

}  // namespace glimpse::models::llava
