#include "glimpse/methods/inspect/logit_lens_method.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/pipeline/method_context.h"

namespace glimpse::methods::inspect {

LogitLens::LogitLens(std::vector<std::int64_t> layers, std::int64_t position, std::int64_t top_k)
    : layers_(std::move(layers)), position_(position), top_k_(top_k) {}

std::unique_ptr<pipeline::Method> LogitLens::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "layers" && key != "position" && key != "top_k")
      params.fail(key, "unknown logit_lens parameter (expected layers, position, top_k)");
  }
  std::vector<std::int64_t> layers;
  if (params.has("layers")) layers = params.get_int_list("layers");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] < 0 || (i > 0 && layers[i] <= layers[i - 1]))
      params.fail("layers", "expected increasing decoder layer indices >= 0");
  }
  std::int64_t position = -1;
  if (params.has("position") && params.raw().at("position").is_string()) {
    if (params.get_string("position") != "last")
      params.fail("position", "expected \"last\" or a prompt index");
  } else if (params.has("position")) {
    position = params.get_int("position");
    if (position < 0) params.fail("position", "expected \"last\" or a prompt index >= 0");
  }
  const std::int64_t top_k = params.get_int("top_k", 5);
  if (top_k <= 0) params.fail("top_k", "expected a positive count");
  return std::make_unique<LogitLens>(std::move(layers), position, top_k);
}

void LogitLens::bind(const pipeline::MethodContext& context) {
  for (const auto l : layers_) {
    if (l >= context.num_layers()) {
      throw ConfigError("logit_lens: key 'layers': layer " + std::to_string(l) +
                        " is outside this model's decoder layers 0.." +
                        std::to_string(context.num_layers() - 1));
    }
  }
  context_ = context;
}

void LogitLens::on_block_post(model::BlockPost& block) {
  if (!block.prefill) return;
  if (block.layer == 0) {
    read_.clear();
    logits_.clear();
  }
  if (!layers_.empty() && !std::binary_search(layers_.begin(), layers_.end(), block.layer)) return;
  if (!context_) throw Error("logit_lens: bind the pipeline to the model first (Pipeline::bind)");
  const std::int64_t s = block.hidden.size(1);
  at::Tensor rows;  // [B] the row of the chosen token in each sequence
  if (position_ < 0) {
    rows = at::full({block.hidden.size(0)}, s - 1, at::TensorOptions().dtype(at::kLong));
  } else {
    if (block.layout == nullptr || !block.layout->defined())
      throw Error("logit_lens: a prompt position needs the token layout");
    // The token keeps its prompt index through pruning (layout.original_index).
    const at::Tensor hit = block.layout->original_index.eq(position_);
    if (!hit.any(1).all().item<bool>()) {
      throw InputError("logit_lens: prompt position " + std::to_string(position_) +
                       " is not in the sequence at layer " + std::to_string(block.layer) +
                       " (outside the prompt, or pruned)");
    }
    rows = hit.to(at::kByte).argmax(1);
  }
  const at::Tensor h = block.hidden.gather(
      1, rows.view({-1, 1, 1}).expand({block.hidden.size(0), 1, block.hidden.size(2)}));
  logits_.push_back(context_->logits_from_hidden(h.squeeze(1), block.layer).to(at::kFloat));
  read_.push_back(block.layer);
}

at::Tensor LogitLens::logits() const {
  if (logits_.empty()) throw Error("logit_lens: no prefill ran");
  return at::stack(logits_, 0);
}

std::vector<LensLayer> LogitLens::top(std::int64_t row) const {
  std::vector<LensLayer> out;
  for (std::size_t i = 0; i < logits_.size(); ++i) {
    const at::Tensor l = logits_[i][row];
    const std::int64_t k = std::min(top_k_, l.size(0));
    const auto [values, ids] = at::topk(l, k);
    const at::Tensor p = at::softmax(l, -1).index_select(0, ids);
    LensLayer layer;
    layer.hidden_state = read_[i] + 1;
    for (std::int64_t j = 0; j < k; ++j)
      layer.top.push_back(
          {ids[j].item<std::int64_t>(), p[j].item<double>(), values[j].item<double>()});
    out.push_back(std::move(layer));
  }
  return out;
}

void LogitLens::report(pipeline::Report& report) const {
  auto& e = report.add("logit_lens");
  e.lists["layers"] = read_;
  e.numbers["position"] = static_cast<double>(position_);
  e.numbers["top_k"] = static_cast<double>(top_k_);
  if (logits_.empty()) return;
  nlohmann::json rows = nlohmann::json::array();
  for (std::int64_t b = 0; b < logits_[0].size(0); ++b) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : top(b)) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& t : l.top)
        top.push_back({{"id", t.id}, {"prob", t.prob}, {"logit", t.logit}});
      layers.push_back({{"layer", l.hidden_state - 1}, {"top", top}});
    }
    rows.push_back(layers);
  }
  e.set_object("sequences", rows.dump());
}

}  // namespace glimpse::methods::inspect
