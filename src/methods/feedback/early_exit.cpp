#include "methods/feedback/early_exit.h"

#include <ATen/ATen.h>

#include <cmath>
#include <numeric>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"

namespace glimpse::methods::feedback {

at::Tensor total_variation(const at::Tensor& p, const at::Tensor& q) {
  return 0.5 * (p.to(at::kFloat) - q.to(at::kFloat)).abs().sum(-1);
}

EarlyExit::EarlyExit(double threshold, std::vector<std::int64_t> layers, std::int64_t interval)
    : threshold_(threshold), layers_(std::move(layers)), interval_(interval) {}

std::unique_ptr<pipeline::Method> EarlyExit::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "threshold" && key != "layers" && key != "interval")
      params.fail(key, "unknown early_exit parameter (expected threshold, layers, interval)");
  }
  const double threshold = params.get_float("threshold", 0.1);
  if (!(threshold >= 0 && threshold <= 1))
    params.fail("threshold", "expected a total variation distance in [0, 1]");
  std::vector<std::int64_t> layers;
  if (params.has("layers")) {
    layers = params.get_int_list("layers");
    if (layers.size() != 2 || layers[0] < 0 || layers[1] < layers[0])
      params.fail("layers", "expected [first, last] exit layers, 0 <= first <= last");
  }
  // DeeR-VLA's released checkpoints exit every 2 layers (multie_intv=2).
  const std::int64_t interval = params.get_int("interval", 2);
  if (interval < 1) params.fail("interval", "expected a layer count >= 1");
  return std::make_unique<EarlyExit>(threshold, std::move(layers), interval);
}

void EarlyExit::bind(const pipeline::MethodContext& context) {
  const std::int64_t n = context.num_layers();
  std::int64_t first = std::max<std::int64_t>(std::llround(n / 2.0) - 1, 0), last = n - 2;
  if (!layers_.empty()) {
    first = layers_[0];
    last = layers_[1];
    if (last > n - 2) {
      throw ConfigError("early_exit: key 'layers': an exit after layer " + std::to_string(last) +
                        " skips nothing; this model's last exit point is layer " +
                        std::to_string(n - 2));
    }
  }
  exits_.clear();
  for (std::int64_t l = first; l <= last; l += interval_) exits_.push_back(l);
  context_ = context;
}

void EarlyExit::on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) {
  keys_ = (before.defined() ? before.size(1) : 0) + inputs.input_ids.size(1);
  batch_ = inputs.input_ids.size(0);
}

void EarlyExit::on_block_post(model::BlockPost& block) {
  if (!context_) throw Error("early_exit: bind the pipeline to the model first (Pipeline::bind)");
  if (block.prefill || exits_.empty()) return;
  const std::int64_t l = block.layer, n = context_->num_layers();
  const auto& shape = context_->shape();
  const std::int64_t rows = block.hidden.size(0) * block.hidden.size(1);
  const std::int64_t keys = std::max<std::int64_t>(keys_, block.hidden.size(1));
  if (l == 0) {
    previous_ = at::Tensor();
    flops_full_ += static_cast<double>(n) * shape.layer_flops(rows, keys);
  }
  flops_run_ += shape.layer_flops(rows, keys);
  const bool exit_point = std::binary_search(exits_.begin(), exits_.end(), l);
  const bool before_first = l + 1 == exits_.front();
  if (!exit_point && !before_first) {
    if (l == n - 1) exit_layers_.push_back(l);
    return;
  }
  const at::Tensor last = block.hidden.select(1, block.hidden.size(1) - 1);
  const at::Tensor p = at::softmax(context_->logits_from_hidden(last, l).to(at::kFloat), -1);
  flops_lens_ += 2.0 * static_cast<double>(last.size(0) * shape.hidden_size) *
                 static_cast<double>(context_->vocab_size());
  if (exit_point && previous_.defined()) {
    if (total_variation(p, previous_).le(threshold_).all().item<bool>()) {
      block.exit = true;
      exit_layers_.push_back(l);
      flops_fill_ += static_cast<double>(n - 1 - l) * shape.kv_fill_flops(rows);
      previous_ = at::Tensor();
      return;
    }
  }
  previous_ = p;
}

void EarlyExit::report(pipeline::Report& report) const {
  auto& e = report.add("early_exit");
  e.numbers["threshold"] = threshold_;
  e.lists["exits"] = exits_;
  const double steps = static_cast<double>(exit_layers_.size());
  std::int64_t early = 0;
  double sum = 0;
  const std::int64_t last = context_ ? context_->num_layers() - 1 : 0;
  for (const auto l : exit_layers_) {
    early += l < last;
    sum += static_cast<double>(l);
  }
  e.numbers["decode_steps"] = steps;
  e.numbers["exited"] = static_cast<double>(early);
  e.numbers["mean_exit_layer"] = steps > 0 ? sum / steps : 0;  // L - 1 for a full pass
  e.numbers["flops_full"] = flops_full_;                       // estimated, decode steps
  e.numbers["flops_fill"] = flops_fill_;
  e.numbers["flops_lens"] = flops_lens_;
  // What the steps saved against running every layer, net of the K/V fill and the lens.
  e.numbers["flops_saved"] = flops_full_ - flops_run_ - flops_fill_ - flops_lens_;
}

}  // namespace glimpse::methods::feedback
