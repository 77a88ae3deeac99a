#include "methods/prune/fastv.h"

#include <ATen/ATen.h>

#include <cmath>

#include "glimpse/core/error.h"
#include "glimpse/pipeline/method_context.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::prune {

FastV::FastV(std::int64_t layer, double ratio) : layer_(layer), ratio_(ratio) {}

std::unique_ptr<pipeline::Method> FastV::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "layer" && key != "ratio") {
      params.fail(key, "unknown FastV parameter (expected layer, ratio)");
    }
  }
  const std::int64_t layer = params.get_int("layer", 2);
  const double ratio = params.get_float("ratio", 0.5);
  // K = 0 exists only in the official mask variant (random keep); the in-place method needs the
  // attention of layer K-1.
  if (layer < 1) params.fail("layer", "expected K >= 1, found " + std::to_string(layer));
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    params.fail("ratio",
                "expected the removed fraction R in [0, 1), found " + std::to_string(ratio));
  }
  return std::make_unique<FastV>(layer, ratio);
}

void FastV::bind(const pipeline::MethodContext& context) {
  check_layer(context.num_layers());
}

void FastV::check_layer(std::int64_t layers) const {
  if (layer_ >= layers) {
    throw ConfigError("fastv: key 'layer': K = " + std::to_string(layer_) +
                      " is outside this model's decoder layers 1.." + std::to_string(layers - 1));
  }
}

std::optional<model::ProbeRequest> FastV::probe(const model::ProbeSite& site) {
  if (!site.prefill || site.stage != model::ProbeStage::Attention || site.layer != layer_ - 1)
    return std::nullopt;
  return model::ProbeRequest{};  // the last row, every head
}

void FastV::on_attention_probe(const model::AttentionProbe& probe) {
  if (!probe.prefill || probe.layer != layer_ - 1) return;
  scores_ = probe.probs.select(2, 0).mean(1);  // [B, keys]: head mean of the last row
}

void FastV::on_block_pre(model::BlockPre& block) {
  // An unbound pipeline meets the model first here.
  if (block.prefill && block.layer == 0) check_layer(block.shape->num_layers);
  if (!block.prefill || block.layer != layer_) return;
  const model::TokenLayout& layout = *block.layout;
  if (!layout.defined() || !scores_.defined()) {
    throw Error("fastv: no attention probe of layer " + std::to_string(layer_ - 1) + " arrived");
  }
  const std::int64_t s = layout.length(), batch = layout.batch();
  const model::DecoderShape& shape = *block.shape;
  // Per sequence (the official code asserts batch 1; each row is ranked on its own here): keep
  // round(N_b (1 - R)) of its N_b visual tokens, ranked by its own last row's attention. Keys of
  // the probe cover any cached prefix first; the current tokens are the last s.
  const at::Tensor scores = scores_.narrow(1, scores_.size(1) - s, s);
  std::vector<at::Tensor> rows;
  before_ = after_ = 0;
  flops_before_ = flops_after_ = 0;
  bool dropped = false;
  for (std::int64_t b = 0; b < batch; ++b) {
    const at::Tensor visual = layout.visual_indices(b);
    const std::int64_t n = visual.numel();
    // kept = round(N(1-R)); Python's round is half to even, as nearbyint is by default.
    const auto keep_n =
        static_cast<std::int64_t>(std::nearbyint(static_cast<double>(n) * (1.0 - ratio_)));
    before_ += n;
    after_ += keep_n;
    const std::int64_t s_after = s - n + keep_n;
    flops_before_ += static_cast<double>(shape.num_layers) * shape.layer_flops(s, s);
    flops_after_ +=
        static_cast<double>(layer_) * shape.layer_flops(s, s) +
        static_cast<double>(shape.num_layers - layer_) * shape.layer_flops(s_after, s_after);
    dropped = dropped || keep_n != n;
    const at::Tensor top = top_indices(scores[b].index_select(0, visual), keep_n);
    at::Tensor keep_mask = layout.modality[b].eq(static_cast<int>(model::Modality::Text));
    keep_mask.index_fill_(0, visual.index_select(0, top), true);
    rows.push_back(keep_mask.nonzero().view({-1}));  // text and kept visual, original order
  }
  applied_ = true;
  if (!dropped) {
    kept_ = at::arange(s, at::TensorOptions().dtype(at::kLong));
    return;  // nothing to drop: leave the sequence untouched (bitwise equal to no FastV)
  }
  // Sequences that keep fewer tokens are left-padded with -1 (masked slots).
  kept_ = pack_keep(rows);
  block.keep = kept_;
}

void FastV::report(pipeline::Report& report) const {
  auto& e = report.add("fastv");
  e.numbers["layer"] = static_cast<double>(layer_);
  e.numbers["ratio"] = ratio_;
  e.numbers["applied"] = applied_ ? 1 : 0;
  e.numbers["visual_tokens_before"] = static_cast<double>(before_);
  e.numbers["visual_tokens_after"] = static_cast<double>(after_);
  e.numbers["prefill_flops_before"] = flops_before_;
  e.numbers["prefill_flops_after"] = flops_after_;
}

}  // namespace glimpse::methods::prune
