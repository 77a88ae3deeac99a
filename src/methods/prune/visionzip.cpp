#include "methods/prune/visionzip.h"

#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/pipeline/method_context.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::prune {
namespace {

// VisionZip visionzip/main.py:visionzip(dominant=191, contextual=30), for LLaVA-1.5's 576 tokens.
constexpr double kPaperDominant = 191.0 / 576.0, kPaperContextual = 30.0 / 576.0;

std::int64_t int_param(const core::Config& params, const char* key) {
  const std::int64_t v = params.get_int(key);
  if (v < 0) params.fail(key, "expected a token count >= 0, found " + std::to_string(v));
  return v;
}

}  // namespace

VisionZip::VisionZip(VisionZipOptions options) : options_(options) {}

std::unique_ptr<pipeline::Method> VisionZip::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "dominant" && key != "contextual" && key != "ratio" &&
        key != "layer") {
      params.fail(key, "unknown VisionZip parameter (expected dominant, contextual, ratio, layer)");
    }
  }
  VisionZipOptions o;
  const bool counts = params.has("dominant") || params.has("contextual");
  if (counts && params.has("ratio")) {
    params.fail("ratio", "give either 'ratio' or the counts 'dominant' and 'contextual'");
  }
  if (counts) {
    if (!params.has("dominant") || !params.has("contextual")) {
      params.fail(params.has("dominant") ? "contextual" : "dominant",
                  "missing: 'dominant' and 'contextual' go together");
    }
    o.dominant = int_param(params, "dominant");
    o.contextual = int_param(params, "contextual");
  }
  if (params.has("ratio")) {
    o.ratio = params.get_float("ratio");
    if (!(o.ratio >= 0.0 && o.ratio < 1.0)) {
      params.fail("ratio",
                  "expected the removed fraction R in [0, 1), found " + std::to_string(o.ratio));
    }
  }
  o.layer = params.get_int("layer", -2);
  return std::make_unique<VisionZip>(o);
}

void VisionZip::bind(const pipeline::MethodContext& context) {
  const core::Config& config = context.model().config();
  const auto vision = config.find_section("vision_config");
  std::int64_t blocks = 0, run = 0;      // the tower's blocks, and how many of them the model runs
  if (vision && vision->has("depth")) {  // Qwen2-VL / Qwen2.5-VL
    qwen_ = true;
    blocks = run = vision->get_int("depth");
    const std::int64_t merge = vision->get_int("spatial_merge_size", 2);
    group_ = merge * merge;
  } else if (vision && vision->has("num_hidden_layers") && config.has("vision_feature_layer")) {
    qwen_ = false;  // LLaVA: the tower runs up to the selected hidden state
    blocks = vision->get_int("num_hidden_layers");
    const std::int64_t selected = config.get_int("vision_feature_layer");
    run = selected < 0 ? blocks + selected + 1 : selected;
    group_ = 1;
  } else {
    throw UnsupportedError(
        "visionzip: this model has no vision tower VisionZip supports "
        "(a CLIP tower under LLaVA, or Qwen2-VL's)");
  }
  // Negative layers count from the tower's end, as the official attentions[-2] does.
  vision_layer_ = options_.layer < 0 ? blocks + options_.layer : options_.layer;
  if (vision_layer_ < 0 || vision_layer_ >= run) {
    const std::int64_t given = options_.layer;
    vision_layer_ = -1;
    throw ConfigError("visionzip: key 'layer': " + std::to_string(given) +
                      " is outside the vision blocks this model runs, 0.." +
                      std::to_string(run - 1));
  }
  shape_ = &context.shape();
}

std::optional<model::VisionProbeRequest> VisionZip::vision_probe(std::int64_t layer) {
  if (layer != vision_layer_) return std::nullopt;
  model::VisionProbeRequest r;
  r.query = qwen_ ? model::VisionProbeRequest::Query::Mean : model::VisionProbeRequest::Query::Cls;
  r.mean_heads = true;
  r.keys = true;
  return r;
}

void VisionZip::on_vision_attention_probe(const model::VisionAttentionProbe& probe) {
  Ranking& r = probe.kind == model::Modality::Video ? videos_ : images_;
  r.scores.clear();
  r.metric.clear();
  for (std::size_t m = 0; m < probe.attention.size(); ++m) {
    // Per LLM token: the mean over its merge group (EffiVLM: attn.view(-1, 4).mean(1) and
    // metric.view(heads, -1, 4, d).mean(2)); CLIP has groups of one.
    const at::Tensor a = probe.attention[m].view({-1});
    const at::Tensor k = probe.keys.at(m);
    r.scores.push_back(a.view({-1, group_}).mean(1));
    r.metric.push_back(k.view({-1, group_, k.size(1)}).mean(1));
  }
}

std::pair<std::int64_t, std::int64_t> VisionZip::budget(std::int64_t tokens) const {
  const auto n = static_cast<double>(tokens);
  if (options_.dominant >= 0) return {options_.dominant, options_.contextual};
  if (options_.ratio == 0.0) return {tokens, 0};
  if (options_.ratio > 0.0) {
    // EffiVLM: dominant = max(1, int(N b 5.4/6.4)), contextual = max(1, int(N b / 6.4)).
    const double b = 1.0 - options_.ratio;
    return {std::max<std::int64_t>(1, static_cast<std::int64_t>(n * b * 5.4 / 6.4)),
            std::max<std::int64_t>(1, static_cast<std::int64_t>(n * b * 1.0 / 6.4))};
  }
  return {static_cast<std::int64_t>(std::nearbyint(n * kPaperDominant)),
          static_cast<std::int64_t>(std::nearbyint(n * kPaperContextual))};
}

std::vector<at::Tensor> VisionZip::zip(std::vector<at::Tensor>& features, const Ranking& ranking,
                                       std::int64_t cls_rows) {
  std::vector<at::Tensor> keeps;
  for (std::size_t m = 0; m < features.size(); ++m) {
    const at::Tensor x = features[m];
    const std::int64_t rows = x.size(0), n = rows - cls_rows;
    const at::Tensor& scores = ranking.scores.at(m);
    if (scores.numel() != n) {
      throw InputError("visionzip: medium " + std::to_string(m) + " has " + std::to_string(n) +
                       " tokens but its attention probe " + std::to_string(scores.numel()) +
                       " (an earlier method reduced it?)");
    }
    auto [dominant, contextual] = budget(n + cls_rows);
    const auto lng = at::TensorOptions().dtype(at::kLong);
    before_.push_back(rows);
    if (dominant + contextual >= rows) {  // nothing to remove: every token stays as it is
      dominant_.push_back(rows);
      contextual_.push_back(0);
      keeps.push_back(at::arange(rows, lng));
      continue;
    }
    // Dominant: CLS (where the features have it) and the top patches by attention.
    const std::int64_t top = std::max<std::int64_t>(0, dominant - cls_rows);
    at::Tensor dom = top_indices(scores, top) + cls_rows;
    if (cls_rows > 0) dom = at::cat({at::arange(cls_rows, lng), dom});
    dom = std::get<0>(at::sort(dom));
    at::Tensor rest_mask = at::ones({rows}, at::kBool);
    rest_mask.index_fill_(0, dom, false);
    const at::Tensor rest = rest_mask.nonzero().view({-1});  // rows, increasing
    const std::int64_t left = rest.numel();
    at::Tensor keep = dom, merged;
    const std::int64_t want = std::min(contextual, left);
    if (want > 0) {
      // Contextual: every step-th remaining token is a target; each other remaining token joins
      // the target its normalised key is most similar to; target + mean of its joiners.
      const at::Tensor metric = ranking.metric.at(m).index_select(0, rest - cls_rows);
      const at::Tensor unit = metric / metric.norm(2, -1, true);
      const std::int64_t step = std::max<std::int64_t>(1, left / contextual);
      const at::Tensor targets = at::arange(0, left, step, lng).narrow(0, 0, want);
      at::Tensor other_mask = at::ones({left}, at::kBool);
      other_mask.index_fill_(0, targets, false);
      const at::Tensor others = other_mask.nonzero().view({-1});
      const at::Tensor assign =
          at::matmul(unit.index_select(0, others), unit.index_select(0, targets).t()).argmax(1);
      const at::Tensor h = x.index_select(0, rest).to(at::kFloat);
      at::Tensor sum = at::zeros({want, x.size(1)}, h.options());
      sum.index_add_(0, assign, h.index_select(0, others));
      const at::Tensor count = at::zeros({want}, h.options())
                                   .index_add_(0, assign, at::ones({others.numel()}, h.options()));
      merged = h.index_select(0, targets) + sum / count.clamp_min(1).unsqueeze(1);
      keep = at::cat({dom, rest.index_select(0, targets)});
    }
    const at::Tensor order = std::get<1>(at::sort(keep));
    keep = keep.index_select(0, order);
    at::Tensor out = x.index_select(0, dom);
    if (merged.defined()) out = at::cat({out, merged.to(x.scalar_type())});
    features[m] = out.index_select(0, order);
    dominant_.push_back(dom.numel());
    contextual_.push_back(want);
    keeps.push_back(keep);
  }
  return keeps;
}

void VisionZip::on_vision_features(model::VisionFeatures& features) {
  if (qwen_) return;
  if (vision_layer_ < 0) {
    throw Error("visionzip: the pipeline is not bound to a model (Pipeline::bind)");
  }
  if (images_.scores.size() != features.features.size()) {
    throw Error("visionzip: no CLS attention probe of vision block " +
                std::to_string(vision_layer_) + " arrived for every image");
  }
  kept_.clear();
  before_.clear();
  dominant_.clear();
  contextual_.clear();
  const std::int64_t cls_rows = features.features[0].size(0) - images_.scores[0].numel();
  std::vector<at::Tensor> keeps = zip(features.features, images_, cls_rows);
  bool reduced = false;
  for (std::size_t m = 0; m < keeps.size(); ++m) {
    reduced = reduced || keeps[m].numel() != before_[m];
  }
  kept_ = keeps;
  count_costs(features.layout, features.modality);
  if (!reduced) {
    return;  // bitwise the plain forward
  }
  features.keep = keeps;
  // The official LLaVA path builds a shorter prompt: contiguous positions.
  features.positions = model::PositionPolicy::Compact;
}

void VisionZip::on_vision_out(model::VisionOut& vision) {
  if (!qwen_) return;
  if (vision_layer_ < 0) {
    throw Error("visionzip: the pipeline is not bound to a model (Pipeline::bind)");
  }
  kept_.clear();
  before_.clear();
  dominant_.clear();
  contextual_.clear();
  std::vector<model::Modality> kinds;
  bool reduced = false;
  auto run = [&](at::Tensor& embeds, at::Tensor& keep, Ranking& ranking, model::Modality kind) {
    if (!embeds.defined()) return;
    std::vector<at::Tensor> media;
    std::int64_t offset = 0;
    for (const auto& s : ranking.scores) {
      if (offset + s.numel() > embeds.size(0)) break;
      media.push_back(embeds.narrow(0, offset, s.numel()));
      offset += s.numel();
    }
    if (offset != embeds.size(0) || media.size() != ranking.scores.size()) {
      throw InputError("visionzip: vision.out has " + std::to_string(embeds.size(0)) +
                       " visual tokens, the attention probe of vision block " +
                       std::to_string(vision_layer_) + " covered " + std::to_string(offset));
    }
    const std::size_t first = before_.size();
    std::vector<at::Tensor> keeps = zip(media, ranking, 0);
    std::vector<at::Tensor> shifted;
    offset = 0;
    for (std::size_t m = 0; m < keeps.size(); ++m) {
      reduced = reduced || keeps[m].numel() != before_[first + m];
      shifted.push_back(keeps[m] + offset);
      offset += before_[first + m];
      kept_.push_back(keeps[m]);
      kinds.push_back(kind);
    }
    if (!keeps.empty()) {
      keep = at::cat(shifted);
      embeds = at::cat(media);
    }
    ranking = Ranking{};
  };
  at::Tensor image_keep, video_keep;
  at::Tensor image_embeds = vision.image_embeds, video_embeds = vision.video_embeds;
  run(image_embeds, image_keep, images_, model::Modality::Image);
  run(video_embeds, video_keep, videos_, model::Modality::Video);
  count_costs(vision.layout, kinds);
  if (!reduced) return;  // bitwise the plain forward
  // EffiVLM's port keeps the original M-RoPE ids of the kept tokens.
  vision.image_embeds = image_embeds;
  vision.video_embeds = video_embeds;
  vision.image_keep = image_keep;
  vision.video_keep = video_keep;
}

void VisionZip::count_costs(const model::TokenLayout* layout,
                            const std::vector<model::Modality>& kinds) {
  flops_before_ = flops_after_ = 0;
  if (layout == nullptr || !layout->defined() || shape_ == nullptr) return;
  const std::int64_t s = layout->length();
  const auto layers = static_cast<double>(shape_->num_layers);
  for (std::int64_t b = 0; b < layout->batch(); ++b) {
    std::int64_t removed = 0;
    std::int64_t image = 0, video = 0;  // media are numbered over the batch within their kind
    for (std::size_t m = 0; m < kinds.size(); ++m) {
      const bool is_video = kinds[m] == model::Modality::Video;
      const std::int64_t index = is_video ? video++ : image++;
      const bool here = layout->modality[b]
                            .eq(static_cast<int>(kinds[m]))
                            .logical_and(layout->media_index[b].eq(index))
                            .any()
                            .item<bool>();
      if (here) removed += before_[m] - kept_[m].numel();
    }
    flops_before_ += layers * shape_->layer_flops(s, s);
    flops_after_ += layers * shape_->layer_flops(s - removed, s - removed);
  }
}

void VisionZip::report(pipeline::Report& report) const {
  auto& e = report.add("visionzip");
  e.numbers["layer"] = static_cast<double>(vision_layer_);
  if (options_.ratio >= 0) e.numbers["ratio"] = options_.ratio;
  e.lists["dominant"] = dominant_;
  e.lists["contextual"] = contextual_;
  std::int64_t before = 0, after = 0;
  for (std::size_t m = 0; m < before_.size(); ++m) {
    before += before_[m];
    after += kept_[m].numel();
  }
  e.numbers["applied"] = after != before ? 1 : 0;
  e.numbers["visual_tokens_before"] = static_cast<double>(before);
  e.numbers["visual_tokens_after"] = static_cast<double>(after);
  e.numbers["prefill_flops_before"] = flops_before_;
  e.numbers["prefill_flops_after"] = flops_after_;
}

}  // namespace glimpse::methods::prune
