#include "methods/feedback/deco.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::feedback {

at::Tensor deco_calibrate(const at::Tensor& final_logits, const at::Tensor& lens_logits,
                          double alpha, double top_p, std::int64_t top_k,
                          std::vector<DecoChoice>* choices) {
  if (final_logits.dim() != 2 || lens_logits.dim() != 3 || lens_logits.size(0) < 1 ||
      lens_logits.size(1) != final_logits.size(0) || lens_logits.size(2) != final_logits.size(1)) {
    throw InputError("deco: expected final logits [B, V] and lens logits [E >= 1, B, V]");
  }
  const at::Tensor z = final_logits.to(at::kFloat);
  const at::Tensor lens = lens_logits.to(at::kFloat);
  const std::int64_t k = std::min(top_k, z.size(1));
  at::Tensor out = at::full_like(z, -std::numeric_limits<float>::infinity());
  for (std::int64_t b = 0; b < z.size(0); ++b) {
    // Candidates: the shortest prefix of the top-k whose cumulative probability reaches top_p
    // (searchsorted, left side), at most k.
    const auto [probs, ids] = at::topk(at::softmax(z[b], -1), k);
    const at::Tensor cumulative = probs.cumsum(0);
    const std::int64_t first =
        at::searchsorted(cumulative, at::scalar_tensor(top_p, cumulative.options()))
            .item<std::int64_t>();
    const std::int64_t m = std::min(first + 1, k);
    const at::Tensor c = ids.narrow(0, 0, m);
    // Anchor: the (layer, candidate) of the highest lens probability, earliest layer first.
    const at::Tensor p = at::softmax(lens.select(1, b), -1).index_select(1, c);  // [E, m]
    const std::int64_t flat = p.reshape({-1}).argmax().item<std::int64_t>();
    const std::int64_t anchor = flat / m;
    const double p_max = p.reshape({-1})[flat].item<double>();
    const at::Tensor mixed = z[b] + (alpha * p_max) * lens[anchor][b];
    out[b].index_copy_(0, c, mixed.index_select(0, c));
    if (choices != nullptr) choices->push_back({anchor, m, p_max});
  }
  return out;
}

DeCo::DeCo(double alpha, double top_p, std::int64_t top_k, std::vector<std::int64_t> layers)
    : alpha_(alpha), top_p_(top_p), top_k_(top_k), layers_(std::move(layers)) {}

std::unique_ptr<pipeline::Method> DeCo::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "alpha" && key != "top_p" && key != "top_k" && key != "layers")
      params.fail(key, "unknown DeCo parameter (expected alpha, top_p, top_k, layers)");
  }
  // Defaults of the official scripts (Deco chair_llava.py and the README).
  const double alpha = params.get_float("alpha", 0.6);
  if (!std::isfinite(alpha) || alpha < 0) params.fail("alpha", "expected a finite value >= 0");
  const double top_p = params.get_float("top_p", 0.9);
  if (!(top_p > 0 && top_p <= 1)) params.fail("top_p", "expected a value in (0, 1]");
  const std::int64_t top_k = params.get_int("top_k", 20);
  if (top_k < 1) params.fail("top_k", "expected a count >= 1");
  std::vector<std::int64_t> layers;
  if (params.has("layers")) {
    layers = params.get_int_list("layers");
    if (layers.size() != 2 || layers[0] < 0 || layers[1] < layers[0])
      params.fail("layers", "expected [first, last] decoder layers, 0 <= first <= last");
  }
  return std::make_unique<DeCo>(alpha, top_p, top_k, std::move(layers));
}

void DeCo::bind(const pipeline::MethodContext& context) {
  const std::int64_t n = context.num_layers();
  std::int64_t first = 0, last = 0;
  if (layers_.empty()) {
    // hidden_states[20..28] of 32 layers, scaled; hidden_states[j] is block j - 1's output.
    first = std::max<std::int64_t>(prune::scale_layer(20, n), 1) - 1;
    last = std::max<std::int64_t>(prune::scale_layer(28, n), 1) - 1;
  } else {
    first = layers_[0];
    last = layers_[1];
    if (last >= n) {
      throw ConfigError("deco: key 'layers': layer " + std::to_string(last) +
                        " is outside this model's decoder layers 0.." + std::to_string(n - 1));
    }
  }
  window_.clear();
  for (std::int64_t l = first; l <= std::min(last, n - 1); ++l) window_.push_back(l);
  context_ = context;
}

void DeCo::on_block_post(model::BlockPost& block) {
  if (block.layer == 0) lens_hidden_.clear();
  if (!std::binary_search(window_.begin(), window_.end(), block.layer)) return;
  lens_hidden_.push_back(block.hidden.select(1, block.hidden.size(1) - 1));
}

void DeCo::on_logits(at::Tensor& logits, bool prefill) {
  if (!context_) throw Error("deco: bind the pipeline to the model first (Pipeline::bind)");
  if (prefill) choices_.clear();
  if (lens_hidden_.size() != window_.size()) {  // an exit stopped the pass before the window
    ++skipped_;
    lens_hidden_.clear();
    return;
  }
  std::vector<at::Tensor> lens;
  for (std::size_t i = 0; i < window_.size(); ++i)
    lens.push_back(context_->logits_from_hidden(lens_hidden_[i], window_[i]));
  lens_hidden_.clear();
  const bool rows = logits.dim() == 3;
  at::Tensor last = rows ? logits.select(1, logits.size(1) - 1) : logits;
  last.copy_(deco_calibrate(last, at::stack(lens, 0), alpha_, top_p_, top_k_, &choices_));
}

void DeCo::report(pipeline::Report& report) const {
  auto& e = report.add("deco");
  e.numbers["alpha"] = alpha_;
  e.numbers["top_p"] = top_p_;
  e.numbers["top_k"] = static_cast<double>(top_k_);
  e.lists["layers"] = window_;
  std::vector<std::int64_t> anchors(window_.size(), 0);
  double p_max = 0, candidates = 0;
  for (const auto& c : choices_) {
    if (c.anchor < static_cast<std::int64_t>(anchors.size())) ++anchors[c.anchor];
    p_max += c.p_max;
    candidates += static_cast<double>(c.candidates);
  }
  const double n = static_cast<double>(choices_.size());
  e.numbers["calibrated"] = n;  // rows calibrated (forwards x sequences)
  e.numbers["mean_p_max"] = n > 0 ? p_max / n : 0;
  e.numbers["mean_candidates"] = n > 0 ? candidates / n : 0;
  e.numbers["skipped"] = static_cast<double>(skipped_);
  e.lists["anchor_counts"] = anchors;  // per window layer: how often it was the anchor
}

}  // namespace glimpse::methods::feedback
