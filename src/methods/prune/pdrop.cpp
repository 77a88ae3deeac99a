#include "methods/prune/pdrop.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/pipeline/method_context.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::prune {
namespace {

// The official defaults for 32-layer LLaVA-1.5 (PyramidDrop scripts/v1_5/pdrop_eval/gqa.sh:
// --layer_list '[8,16,24]' --image_token_ratio_list "[0.5,0.25,0.125]").
constexpr std::int64_t kPaperLayers[] = {8, 16, 24};

std::string join(const std::vector<std::int64_t>& v) {
  std::string s;
  for (const auto x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return "[" + s + "]";
}

}  // namespace

PyramidDrop::PyramidDrop(std::vector<std::int64_t> layers, std::vector<double> keep_ratios,
                         double ratio)
    : layers_given_(std::move(layers)), keep_ratios_given_(std::move(keep_ratios)), ratio_(ratio) {}

std::unique_ptr<pipeline::Method> PyramidDrop::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "layers" && key != "ratio" && key != "keep_ratios") {
      params.fail(key, "unknown PyramidDrop parameter (expected layers, ratio, keep_ratios)");
    }
  }
  if (params.has("ratio") && params.has("keep_ratios")) {
    params.fail("keep_ratios", "give either 'ratio' or 'keep_ratios', not both");
  }
  const std::vector<std::int64_t> layers = params.get_int_list("layers", {});
  if (params.has("layers") && layers.empty()) params.fail("layers", "expected at least one layer");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    // Layer 0 has no earlier layer whose output could be ranked, as in the official loop.
    if (layers[i] < 1) params.fail("layers", "expected layers >= 1, found " + join(layers));
    if (i > 0 && layers[i] <= layers[i - 1]) {
      params.fail("layers", "expected strictly increasing layers, found " + join(layers));
    }
  }
  std::vector<double> keep_ratios;
  if (params.has("keep_ratios")) {
    keep_ratios = params.get_float_list("keep_ratios");
    for (std::size_t i = 0; i < keep_ratios.size(); ++i) {
      const double r = keep_ratios[i];
      if (!(r >= 0.0 && r <= 1.0) || (i > 0 && r > keep_ratios[i - 1])) {
        params.fail("keep_ratios",
                    "expected non-increasing fractions in [0, 1] of the visual tokens kept after "
                    "each stage");
      }
    }
    if (keep_ratios.empty()) params.fail("keep_ratios", "expected one fraction per stage");
    if (!layers.empty() && keep_ratios.size() != layers.size()) {
      params.fail("keep_ratios", "expected " + std::to_string(layers.size()) +
                                     " fractions, one per entry of 'layers'");
    }
  }
  const double ratio = params.get_float("ratio", 0.5);
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    params.fail("ratio", "expected the fraction R removed at each stage in [0, 1), found " +
                             std::to_string(ratio));
  }
  return std::make_unique<PyramidDrop>(layers, keep_ratios, ratio);
}

void PyramidDrop::resolve(std::int64_t num_layers) {
  if (resolved_for_ == num_layers) return;
  if (layers_given_.empty()) {
    // Scaled paper layers, clamped to 1..L-1 and deduplicated (a 3-layer model gets [1, 2]).
    layers_.clear();
    for (const std::int64_t l : kPaperLayers) {
      const std::int64_t s =
          std::clamp<std::int64_t>(scale_layer(l, num_layers), 1, num_layers - 1);
      if (layers_.empty() || s > layers_.back()) layers_.push_back(s);
    }
    if (num_layers < 2) {
      throw ConfigError("pdrop: this model has " + std::to_string(num_layers) +
                        " decoder layer(s); PyramidDrop needs at least 2");
    }
  } else {
    layers_ = layers_given_;
    if (layers_.back() >= num_layers) {
      throw ConfigError("pdrop: key 'layers': " + join(layers_) +
                        " reaches outside this model's decoder layers 1.." +
                        std::to_string(num_layers - 1));
    }
  }
  if (keep_ratios_given_.empty()) {
    keep_ratios_.clear();
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      keep_ratios_.push_back(std::pow(1.0 - ratio_, static_cast<double>(i + 1)));
    }
  } else {
    if (keep_ratios_given_.size() != layers_.size()) {
      throw ConfigError("pdrop: key 'keep_ratios': " + std::to_string(keep_ratios_given_.size()) +
                        " fractions for the " + std::to_string(layers_.size()) + " stage layers " +
                        join(layers_) + " (give 'layers' as well)");
    }
    keep_ratios_ = keep_ratios_given_;
  }
  resolved_for_ = num_layers;
}

void PyramidDrop::bind(const pipeline::MethodContext& context) {
  resolve(context.num_layers());
}

std::optional<model::ProbeRequest> PyramidDrop::probe(const model::ProbeSite& site) {
  if (!site.prefill || site.stage != model::ProbeStage::BeforeBlock ||
      std::find(layers_.begin(), layers_.end(), site.layer) == layers_.end()) {
    return std::nullopt;
  }
  // The last prompt token's row (pdrop_rank_drop at inference: prompt_total_len - 1), head mean.
  model::ProbeRequest r;
  r.over_heads = model::ProbeReduce::Mean;
  return r;
}

void PyramidDrop::on_attention_probe(const model::AttentionProbe& probe) {
  if (probe.prefill && probe.stage == model::ProbeStage::BeforeBlock) {
    scores_ = probe.probs.select(2, 0).select(1, 0);  // [B, keys]
  }
}

void PyramidDrop::on_block_pre(model::BlockPre& block) {
  if (!block.prefill) return;
  const model::TokenLayout& layout = *block.layout;
  const std::int64_t batch = block.hidden.size(0);
  if (block.layer == 0) {
    resolve(block.shape->num_layers);  // an unbound pipeline meets the model here
    n0_.assign(static_cast<std::size_t>(batch), 0);
    kept_.clear();
    visual_per_layer_.clear();
    flops_before_ = flops_after_ = 0;
    applied_ = false;
    if (layout.defined()) {
      for (std::int64_t b = 0; b < batch; ++b) {
        n0_[static_cast<std::size_t>(b)] = layout.visual_indices(b).numel();
      }
    }
  }
  const std::int64_t s_in = block.hidden.size(1);
  const auto stage = std::find(layers_.begin(), layers_.end(), block.layer);
  if (stage != layers_.end() && layout.defined()) {
    if (!scores_.defined()) {
      throw Error("pdrop: no attention probe before layer " + std::to_string(block.layer) +
                  " arrived");
    }
    const double keep_ratio = keep_ratios_[static_cast<std::size_t>(stage - layers_.begin())];
    const at::Tensor scores = scores_.narrow(1, scores_.size(1) - s_in, s_in);
    std::vector<at::Tensor> rows;
    bool dropped = false;
    for (std::int64_t b = 0; b < batch; ++b) {
      const at::Tensor visual = layout.visual_indices(b);
      // int(N0 * ratio) as the official code counts (pdrop_rank_drop: keep_length), never more
      // than are left.
      const auto keep_n = std::min<std::int64_t>(
          visual.numel(), static_cast<std::int64_t>(
                              static_cast<double>(n0_[static_cast<std::size_t>(b)]) * keep_ratio));
      dropped = dropped || keep_n != visual.numel();
      const at::Tensor top = top_indices(scores[b].index_select(0, visual), keep_n);
      at::Tensor keep_mask = layout.modality[b].eq(static_cast<int>(model::Modality::Text));
      keep_mask.index_fill_(0, visual.index_select(0, top), true);
      rows.push_back(keep_mask.nonzero().view({-1}));
    }
    scores_ = at::Tensor();
    if (dropped) {
      block.keep = pack_keep(rows);
      block.positions = model::PositionPolicy::Compact;
      kept_.push_back(block.keep);
      applied_ = true;
    }
  }
  // Costs of this layer over the tokens it runs on (the keep just made included).
  const std::int64_t s_out = block.keep.defined() ? block.keep.size(-1) : s_in;
  const model::DecoderShape& shape = *block.shape;
  std::int64_t visual = 0;
  for (std::int64_t b = 0; b < batch && layout.defined(); ++b) {
    const std::int64_t n = layout.visual_indices(b).numel();
    std::int64_t kept = n;
    if (block.keep.defined()) {
      const at::Tensor row = block.keep.dim() == 1 ? block.keep : block.keep[b];
      const at::Tensor valid = row.masked_select(row.ge(0));
      kept = layout.modality[b].index_select(0, valid).ne(0).sum().item<std::int64_t>();
    }
    visual += kept;
  }
  visual_per_layer_.push_back(visual);
  flops_after_ += static_cast<double>(batch) * shape.layer_flops(s_out, s_out);
  if (block.layer == 0) first_length_ = s_in;
  flops_before_ += static_cast<double>(batch) * shape.layer_flops(first_length_, first_length_);
}

void PyramidDrop::report(pipeline::Report& report) const {
  auto& e = report.add("pdrop");
  e.lists["layers"] = layers_;
  e.set_object("keep_ratios", nlohmann::json(keep_ratios_).dump());
  e.numbers["ratio"] = ratio_;
  e.numbers["applied"] = applied_ ? 1 : 0;
  std::int64_t before = 0;
  for (const auto n : n0_) before += n;
  e.numbers["visual_tokens_before"] = static_cast<double>(before);
  e.numbers["visual_tokens_after"] =
      visual_per_layer_.empty() ? before : static_cast<double>(visual_per_layer_.back());
  e.lists["visual_tokens_per_layer"] = visual_per_layer_;
  e.numbers["prefill_flops_before"] = flops_before_;
  e.numbers["prefill_flops_after"] = flops_after_;
}

}  // namespace glimpse::methods::prune
