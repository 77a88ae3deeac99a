#include "models/qwen2_vl/modeling.h"

#include <cmath>
#include <filesystem>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/model/registry.h"
#include "glimpse/models/qwen2_vl/image_processing.h"
#include "kernels/ops.h"
#include "layers/weights.h"
#include "model/inputs.h"
#include "models/qwen2_vl/processor.h"
#include "models/qwen2_vl/rope_index.h"

namespace glimpse::models::qwen2_vl {
namespace {

// The grid [n, 3] of (t, h, w) as int64 after checking that each row is positive with h and w
// divisible by `merge`, and that the patches it describes (computed without overflow, before
// anything is sized from them) stay within `limit`, what `limit_what` holds. Returns the total.
std::int64_t checked_grid(const at::Tensor& grid, std::int64_t merge, std::int64_t limit,
                          const std::string& grid_name, const std::string& limit_what,
                          at::Tensor* as_long = nullptr) {
  if (grid.dim() != 2 || grid.size(1) != 3 || at::isFloatingType(grid.scalar_type()) ||
      grid.scalar_type() == at::kBool) {
    throw InputError(grid_name + ": expected an integer tensor [n, 3] of (t, h, w), found " +
                     c10::str(grid.sizes()));
  }
  const at::Tensor g = grid.to(at::kLong).contiguous();
  const auto* p = g.data_ptr<std::int64_t>();
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < g.size(0); ++i) {
    const std::int64_t t = p[3 * i], h = p[3 * i + 1], w = p[3 * i + 2];
    const std::string row = grid_name + " row " + std::to_string(i) + ": (" + std::to_string(t) +
                            ", " + std::to_string(h) + ", " + std::to_string(w) + ")";
    if (t <= 0 || h <= 0 || w <= 0 || h % merge || w % merge) {
      throw InputError(row + " must be positive with h and w divisible by spatial_merge_size " +
                       std::to_string(merge));
    }
    // t * h * w <= limit - total, without forming a product that could overflow.
    const std::int64_t room = limit - total;
    if (t > room || h > room / t || w > room / (t * h)) {
      throw InputError(row + " describes more patches than " + limit_what + " (" +
                       std::to_string(limit) + " in all)");
    }
    total += t * h * w;
  }
  if (as_long != nullptr) *as_long = g;
  return total;
}

// Checks pixel_values [N, patch_dim] (finite) against grid_thw [n, 3] and returns the grid as
// int64.
at::Tensor check_vision(const at::Tensor& pixels, const at::Tensor& grid, const VisionConfig& v,
                        const std::string& pixels_name, const std::string& grid_name) {
  if (!grid.defined()) throw InputError(pixels_name + " given without " + grid_name);
  if (pixels.dim() != 2 || pixels.size(1) != v.patch_dim()) {
    throw InputError(pixels_name + ": expected shape [patches, " + std::to_string(v.patch_dim()) +
                     "], found " + c10::str(pixels.sizes()));
  }
  at::Tensor g;
  const std::int64_t total = checked_grid(grid, v.spatial_merge_size, pixels.size(0), grid_name,
                                          pixels_name + " holds", &g);
  if (total != pixels.size(0)) {
    throw InputError(grid_name + " describes " + std::to_string(total) + " patches, but " +
                     pixels_name + " has " + std::to_string(pixels.size(0)));
  }
  model::check_finite(pixels, pixels_name);
  return g;
}

// Before anything is sized from the grids (get_rope_index walks every cell): each kind's grid
// must describe exactly its placeholder tokens in input_ids.
void check_grids_against_tokens(const model::ForwardInputs& in, const Qwen2VLConfig& c) {
  const std::int64_t m = c.vision.spatial_merge_size, unit = m * m;
  auto check = [&](const at::Tensor& grid, std::int64_t token, const char* grid_name,
                   const char* kind) {
    if (!grid.defined()) return;
    const std::int64_t tokens = in.input_ids.eq(token).sum().item<std::int64_t>();
    const std::int64_t patches =
        checked_grid(grid, m, tokens * unit, grid_name,
                     "the " + std::to_string(tokens) + " " + kind + " tokens of input_ids allow");
    if (patches / unit != tokens) {
      throw InputError(std::string(kind) + " features and " + kind +
                       " tokens do not match: tokens: " + std::to_string(tokens) + ", features " +
                       std::to_string(patches / unit));
    }
  };
  check(in.image_grid_thw, c.image_token_id, "image_grid_thw", "Image");
  check(in.video_grid_thw, c.video_token_id, "video_grid_thw", "Video");
  if (in.second_per_grid_ts.defined() && at::isFloatingType(in.second_per_grid_ts.scalar_type()))
    model::check_finite(in.second_per_grid_ts, "second_per_grid_ts");
}

}  // namespace

Qwen2VLForConditionalGeneration::Qwen2VLForConditionalGeneration(const std::string& dir,
                                                                 const model::LoadOptions& options)
    : raw_config_(core::Config::load((std::filesystem::path(dir) / "config.json").string())),
      config_(parse_config(raw_config_)),
      dtype_(options.dtype) {
  if (dtype_ != at::kFloat && dtype_ != at::kBFloat16) {
    throw UnsupportedError("compute dtype must be f32 or bf16");
  }
  // Checkpoints saved by newer transformers use model.language_model.* and model.visual.*
  // (the reverse of _checkpoint_conversion_mapping).
  layers::WeightLoader weights(core::Checkpoint::open(dir), dtype_,
                               options.weights == model::WeightMemory::Resident,
                               {{"model.", "model.language_model."}, {"visual.", "model.visual."}});
  vision_ = std::make_unique<VisionTransformer>(weights, config_.vision);
  decoder_ = std::make_unique<layers::Decoder>(weights, config_.text);
  weights_ = weights.bound();
  const auto unused = weights.unused();
  for (const auto& name : unused) {
    if (name != "lm_head.weight") {
      GLIMPSE_LOG(Warn) << weights.path() << ": unused tensor '" << name << "'";
    }
  }
}

at::Tensor Qwen2VLForConditionalGeneration::encode_vision(const at::Tensor& pixel_values,
                                                          const at::Tensor& grid_thw,
                                                          VisionTrace* trace) const {
  const at::Tensor g =
      check_vision(pixel_values, grid_thw, config_.vision, "pixel_values", "image_grid_thw");
  return vision_->forward(pixel_values, g, trace);
}

model::MediaEmbeds Qwen2VLForConditionalGeneration::embed_media(const model::ForwardInputs& in) {
  model::MediaEmbeds m;
  if (in.pixel_values.defined()) m.image_embeds = encode_vision(in.pixel_values, in.image_grid_thw);
  if (in.pixel_values_videos.defined()) {
    m.video_embeds =
        vision_->forward(in.pixel_values_videos,
                         check_vision(in.pixel_values_videos, in.video_grid_thw, config_.vision,
                                      "pixel_values_videos", "video_grid_thw"));
  }
  return m;
}

at::Tensor Qwen2VLForConditionalGeneration::embed(const model::ForwardInputs& in,
                                                  const model::TokenLayout& layout,
                                                  model::ForwardHooks* hooks,
                                                  layers::PromptCut& cut) const {
  const at::Tensor ids = in.input_ids;
  at::Tensor x = decoder_->embed(ids);
  if (hooks != nullptr && !hooks->active()) hooks = nullptr;
  const std::int64_t unit = config_.vision.spatial_merge_size * config_.vision.spatial_merge_size;
  // One kind of media: the given embeds, else the vision tower on the pixels
  // (get_image_features / get_video_features), checked against the placeholder count.
  struct Kind {
    const at::Tensor& pixels;
    const at::Tensor& grid;
    const at::Tensor& given;
    std::int64_t token;
    const char *pixels_name, *grid_name, *embeds_name, *name;
    model::Modality modality;
    VisionTransformer::Encoding encoding;  // from the tower
    at::Tensor embeds;                     // one row per kept placeholder
    at::Tensor keep;                       // kept placeholders of the kind; undefined: all
    std::int64_t tokens = 0;               // placeholders in input_ids
  };
  Kind kinds[2] = {{in.pixel_values,
                    in.image_grid_thw,
                    in.image_embeds,
                    config_.image_token_id,
                    "pixel_values",
                    "image_grid_thw",
                    "image_embeds",
                    "Image",
                    model::Modality::Image,
                    {},
                    {},
                    {},
                    0},
                   {in.pixel_values_videos,
                    in.video_grid_thw,
                    in.video_embeds,
                    config_.video_token_id,
                    "pixel_values_videos",
                    "video_grid_thw",
                    "video_embeds",
                    "Video",
                    model::Modality::Video,
                    {},
                    {},
                    {},
                    0}};
  for (Kind& k : kinds) {
    k.tokens = ids.eq(k.token).sum().item<std::int64_t>();
    if (k.given.defined()) {
      if (k.given.dim() != 2 || k.given.size(0) != k.tokens || k.given.size(1) != x.size(-1)) {
        throw InputError(std::string(k.embeds_name) + ": expected [" + std::to_string(k.tokens) +
                         ", " + std::to_string(x.size(-1)) + "] (one row per " + k.name +
                         " token), found " + c10::str(k.given.sizes()));
      }
      model::check_finite(k.given, k.embeds_name);
      k.embeds = k.given.to(x.scalar_type());
      continue;
    }
    if (!k.pixels.defined()) {
      if (k.tokens > 0) {
        throw InputError(std::string("input_ids has ") + std::to_string(k.tokens) + " " + k.name +
                         " tokens but " + k.pixels_name + " is missing");
      }
      continue;
    }
    const at::Tensor g = check_vision(k.pixels, k.grid, config_.vision, k.pixels_name, k.grid_name);
    const std::int64_t count = k.pixels.size(0) / unit;
    if (k.tokens != count) {
      throw InputError(std::string(k.name) + " features and " + k.name +
                       " tokens do not match: tokens: " + std::to_string(k.tokens) + ", features " +
                       std::to_string(count));
    }
    k.encoding = vision_->encode(k.pixels, g, nullptr, hooks, k.modality);
  }
  model::PositionPolicy policy = model::PositionPolicy::Keep;
  if (hooks && (kinds[0].encoding.hidden.defined() || kinds[1].encoding.hidden.defined())) {
    // vision.features: the patches entering the merger, per medium in merge-block order.
    model::VisionFeatures f;
    f.group = unit;
    f.layout = &layout;
    for (Kind& k : kinds) {
      if (!k.encoding.hidden.defined()) continue;
      const at::Tensor rows = vision_->merge_block_order(k.encoding);
      std::int64_t offset = 0;
      for (const std::int64_t p : k.encoding.patches) {
        f.features.push_back(rows.narrow(0, offset, p));
        f.modality.push_back(k.modality);
        offset += p;
      }
    }
    const std::vector<at::Tensor> given = f.features;
    hooks->on_vision_features(f);
    if (f.features.size() != given.size()) {
      throw InputError("vision.features: a hook changed the number of media");
    }
    std::size_t j = 0;
    for (Kind& k : kinds) {
      if (!k.encoding.hidden.defined()) continue;
      std::vector<at::Tensor> kept, keeps;
      std::vector<std::int64_t> tokens;
      bool changed = false;
      for (const std::int64_t p : k.encoding.patches) {
        const at::Tensor& feats = f.features[j];
        const at::Tensor keep = j < f.keep.size() ? f.keep[j] : at::Tensor();
        const std::string what = "vision.features: medium " + std::to_string(j);
        changed = changed || keep.defined() || !feats.is_same(given[j]);
        if (!feats.defined() || feats.dim() != 2 || feats.size(1) != given[j].size(1) ||
            feats.size(0) % unit != 0) {
          throw InputError(what + ": expected features [tokens * " + std::to_string(unit) + ", " +
                           std::to_string(given[j].size(1)) + "], found " +
                           (feats.defined() ? c10::str(feats.sizes()) : "none"));
        }
        at::Tensor rows = feats.view({feats.size(0) / unit, -1});
        if (keep.defined()) rows = layers::kept_rows(rows, keep, p / unit, what);
        if (!keep.defined() && rows.size(0) != p / unit) {
          throw InputError(what + ": a hook changed the number of features without a keep");
        }
        kept.push_back(rows.reshape({-1, feats.size(1)}).to(given[j].scalar_type()));
        keeps.push_back(keep);
        tokens.push_back(p / unit);
        ++j;
      }
      // Untouched features take the reference's path (the merger in window order).
      if (changed) {
        k.embeds =
            vision_->merge_rows(kept.size() == 1 ? kept[0] : at::cat(kept)).to(x.scalar_type());
        k.keep = layers::concat_keeps(keeps, tokens);
      }
    }
    if (f.positions == model::PositionPolicy::Compact) policy = f.positions;
  }
  for (Kind& k : kinds) {
    if (k.encoding.hidden.defined() && !k.embeds.defined()) {
      k.embeds = vision_->merge(k.encoding).to(x.scalar_type());
    }
  }
  if (hooks && (kinds[0].embeds.defined() || kinds[1].embeds.defined())) {
    model::VisionOut vision;
    vision.image_embeds = kinds[0].embeds;
    vision.video_embeds = kinds[1].embeds;
    vision.layout = &layout;
    hooks->on_vision_out(vision);
    at::Tensor* out_embeds[2] = {&vision.image_embeds, &vision.video_embeds};
    const at::Tensor out_keeps[2] = {vision.image_keep, vision.video_keep};
    for (int i = 0; i < 2; ++i) {
      Kind& k = kinds[i];
      const std::string what = std::string("vision.out: ") + (i == 0 ? "image" : "video");
      if (!k.embeds.defined()) {
        if (out_embeds[i]->defined() || out_keeps[i].defined())
          throw InputError(what + ": the prompt has no such media");
        continue;
      }
      const std::int64_t rows = k.embeds.size(0);
      if (out_keeps[i].defined()) {
        k.embeds = layers::kept_rows(*out_embeds[i], out_keeps[i], rows, what + "_keep");
        const at::Tensor own = model::checked_keep(out_keeps[i], rows, what + "_keep");
        k.keep = k.keep.defined() ? k.keep.index_select(0, own) : own;
        if (vision.positions == model::PositionPolicy::Compact) policy = vision.positions;
      } else if (!out_embeds[i]->defined() || out_embeds[i]->sizes() != k.embeds.sizes()) {
        throw InputError(what + "_embeds: a hook changed the shape of the vision features");
      } else {
        k.embeds = *out_embeds[i];
      }
    }
  }
  for (Kind& k : kinds) {
    layers::drop_media_rows(ids, k.token, k.keep, cut);
  }
  if (cut.any()) cut.positions = policy;
  for (const Kind& k : kinds) {
    if (!k.embeds.defined()) continue;
    const at::Tensor mask = layers::scatter_mask(ids, k.token, cut).unsqueeze(-1).expand_as(x);
    x = x.masked_scatter(mask, k.embeds.to(x.scalar_type()));
  }
  return x;
}

model::ForwardOutput Qwen2VLForConditionalGeneration::run(const model::ForwardInputs& raw,
                                                          const model::ForwardOptions& options,
                                                          model::DecodeState* state) {
  model::ForwardInputs in = model::checked_text_inputs(raw, config_.text.vocab_size);
  model::check_autograd(options, state);
  const kernels::ReferenceOps reference(options.autograd);
  const std::int64_t b = in.input_ids.size(0), s = in.input_ids.size(1);
  if (in.second_per_grid_ts.defined() && in.video_grid_thw.defined() &&
      in.second_per_grid_ts.numel() != in.video_grid_thw.size(0)) {
    throw InputError("second_per_grid_ts: expected one value per row of video_grid_thw");
  }

  const bool prefill = state == nullptr || state->past_length() == 0;
  const bool media = in.pixel_values.defined() || in.pixel_values_videos.defined() ||
                     in.image_embeds.defined() || in.video_embeds.defined();
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  model::ForwardOutput out;
  at::Tensor x;
  model::TokenLayout layout;
  layers::PromptCut cut;  // visual tokens the vision sites dropped
  if (!prefill && b != state->batch()) {
    throw InputError("input_ids: batch of " + std::to_string(b) + " differs from the state's " +
                     std::to_string(state->batch()));
  }
  if (prefill || media) {
    check_grids_against_tokens(in, config_);
    // A prompt, or media appended to the cache: get_rope_index over the chunk, shifted to start
    // at each sequence's next position. Its st_idx is always the previous maximum + 1, so this is
    // what the reference gives the whole conversation.
    RopeIndex rope = get_rope_index(config_, in.input_ids, in.image_grid_thw, in.video_grid_thw,
                                    in.second_per_grid_ts, in.attention_mask);
    if (!prefill) {
      const std::int64_t past = state->past_length();
      rope.position_ids = (rope.position_ids + state->next_position.view({1, b, 1}))
                              .masked_fill_(in.attention_mask.eq(0).unsqueeze(0), 1);
      rope.rope_deltas = rope.rope_deltas + state->next_position.view({b, 1}) - past;
      rope.layout.positions = rope.position_ids;
      rope.layout.original_index = rope.layout.original_index + past;
    }
    out.position_ids = rope.position_ids;
    out.rope_deltas = rope.rope_deltas;
    layout = std::move(rope.layout);
    x = embed(in, layout, options.hooks, cut);
  } else {
    // Text after the cache (decode steps, appended turns): the next positions, the same on all
    // three streams; left padding of the chunk takes none.
    x = decoder_->embed(in.input_ids);
    const std::int64_t past = state->past_length();
    const at::Tensor p = (state->next_position.view({b, 1}) + in.attention_mask.cumsum(1) - 1)
                             .masked_fill_(in.attention_mask.eq(0), 1);
    out.position_ids = p.unsqueeze(0).expand({3, b, s});
    // Defined so that the next position is slots + rope_deltas, as after a prefill.
    out.rope_deltas = state->next_position.view({b, 1}) + in.attention_mask.sum(1, true) - past - s;
    layout.modality = at::zeros({b, s}, at::TensorOptions().dtype(at::kChar));
    layout.media_index = at::full({b, s}, -1, i64);
    layout.grid = at::full({b, s, 3}, -1, i64);
    layout.positions = out.position_ids;
    layout.original_index = at::arange(past, past + s, i64).view({1, s}).repeat({b, 1});
  }
  at::Tensor attention_mask = in.attention_mask;
  at::Tensor next;
  if (state != nullptr) {
    // rope_deltas = max position + 1 - slots: the next position is slots + rope_deltas.
    next = (out.rope_deltas.view({b}) + state->past_length() + s).contiguous();
  }
  if (cut.any()) {
    const at::Tensor removed = layers::apply_cut(cut, x, attention_mask, layout);
    out.position_ids = layout.positions;
    if (next.defined() && cut.positions == model::PositionPolicy::Compact) next = next - removed;
    // Still the next position minus the slots the cache will hold.
    if (next.defined()) out.rope_deltas = (next - state->past_length() - x.size(1)).view({b, 1});
  }
  if (state != nullptr) state->next_position = next;
  const auto [cos, sin] = mrope_cos_sin(config_, out.position_ids, dtype_);
  const layers::RopeFn rope = [this](const at::Tensor& positions) {
    return mrope_cos_sin(config_, positions, dtype_);
  };
  return decoder_->forward(x, cos, sin, attention_mask, std::move(layout), options, state, prefill,
                           std::move(out), rope);
}

model::ForwardOutput Qwen2VLForConditionalGeneration::forward(
    const model::ForwardInputs& inputs, const model::ForwardOptions& options) {
  return run(inputs, options, nullptr);
}

model::ForwardOutput Qwen2VLForConditionalGeneration::forward_cached(
    const model::ForwardInputs& inputs, const model::ForwardOptions& options,
    model::DecodeState& state) {
  if (!state.cache) throw InputError("decoding state has no cache (use Model::new_state)");
  return run(inputs, options, &state);
}

model::DecodeState Qwen2VLForConditionalGeneration::new_state(std::int64_t) const {
  model::DecodeState state;
  state.cache = std::make_unique<model::DenseKVCache>(config_.text.num_layers);
  return state;
}

std::optional<model::SyntheticImage> Qwen2VLForConditionalGeneration::synthetic_image(
    const model::SyntheticImageRequest& request) const {
  const auto& v = config_.vision;
  const std::int64_t merge = v.spatial_merge_size;
  model::SyntheticImage out;
  std::int64_t gh = 0, gw = 0;  // patch grid
  if (request.width > 0 || request.height > 0) {
    const std::int64_t factor = v.patch_size * merge;
    // The processor's default pixel bounds (image_processing_qwen2_vl.py min/max_pixels).
    const auto hw = smart_resize(request.height, request.width, factor, 3136, 12845056);
    out.height = hw.height;
    out.width = hw.width;
    gh = hw.height / v.patch_size;
    gw = hw.width / v.patch_size;
  } else {
    const std::int64_t n = request.visual_tokens < 0 ? 1024 : request.visual_tokens;
    if (n == 0) return std::nullopt;
    // The most square h x w merged grid with h * w = n.
    auto h = static_cast<std::int64_t>(std::sqrt(static_cast<double>(n)));
    while (h > 1 && n % h != 0) --h;
    gh = h * merge;
    gw = n / h * merge;
    out.height = gh * v.patch_size;
    out.width = gw * v.patch_size;
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  out.visual_tokens = gh * gw / (merge * merge);
  out.vision_patches = gh * gw;
  const std::int64_t vision_end =
      raw_config_.get_int("vision_end_token_id", config_.vision_start_token_id + 1);
  out.placeholder_ids = at::cat({at::full({1}, config_.vision_start_token_id, i64),
                                 at::full({out.visual_tokens}, config_.image_token_id, i64),
                                 at::full({1}, vision_end, i64)});
  out.image_grid_thw = at::tensor(std::vector<std::int64_t>{1, gh, gw}, i64).view({1, 3});
  out.pixel_values = at::randn({gh * gw, v.patch_dim()});
  return out;
}

void register_models(model::ModelRegistry& registry) {
  auto factory = [](const std::string& dir, const model::LoadOptions& options) {
    return std::unique_ptr<model::Model>(new Qwen2VLForConditionalGeneration(dir, options));
  };
  auto processor = [](const std::string& dir) {
    return std::unique_ptr<model::Processor>(new Qwen2VLProcessor(dir));
  };
  for (const char* key : {"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration",
                          "qwen2_vl", "qwen2_5_vl"}) {
    registry.add(key, factory, processor);
  }
}

}  // namespace glimpse::models::qwen2_vl
