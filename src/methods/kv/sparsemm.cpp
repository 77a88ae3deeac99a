#include "methods/kv/sparsemm.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/json_util.h"
#include "glimpse/core/error.h"
#include "glimpse/pipeline/method_context.h"

namespace glimpse::methods::kv {

SparseMM::SparseMM(KvBudget budget, WindowOptions options, at::Tensor scores, double ratio,
                   std::string source)
    : WindowCompressor(budget, options),
      scores_(std::move(scores)),
      ratio_(ratio),
      source_(std::move(source)) {}

std::unique_ptr<pipeline::Method> SparseMM::create(const core::Config& params) {
  const WindowOptions options = parse_window_options(params, {"scores", "ratio"});
  if (!params.has("scores")) {
    params.fail("scores", "expected the visual-head score file (glimpse visual-heads writes one)");
  }
  const double ratio = params.get_float("ratio", 0.1);
  if (!(ratio >= 0.0 && ratio <= 1.0)) {
    params.fail("ratio",
                "expected the guaranteed fraction in [0, 1], found " + std::to_string(ratio));
  }
  const std::string path = params.get_string("scores");
  return std::make_unique<SparseMM>(KvBudget::parse(params, options.window), options,
                                    read_scores(path), ratio, path);
}

at::Tensor SparseMM::read_scores(const std::string& path) {
  const nlohmann::json j = core::read_json_file(path);
  if (!j.is_object() || j.empty()) {
    throw FormatError(path + ": expected an object of \"layer-head\" keys, found " +
                      core::json_type_name(j));
  }
  std::map<std::pair<std::int64_t, std::int64_t>, double> mean;
  std::int64_t layers = 0, heads = 0;
  for (const auto& [key, value] : j.items()) {
    const auto dash = key.find('-');
    std::size_t used_l = 0, used_h = 0;
    std::int64_t l = -1, h = -1;
    try {
      if (dash != std::string::npos) {
        l = std::stoll(key.substr(0, dash), &used_l);
        h = std::stoll(key.substr(dash + 1), &used_h);
      }
    } catch (const std::exception&) {
      l = -1;
    }
    if (dash == std::string::npos || l < 0 || h < 0 || used_l != dash ||
        used_h != key.size() - dash - 1 || l > 4096 || h > 4096) {
      throw FormatError(path + ": key '" + key + "': expected \"layer-head\" (e.g. \"3-7\")");
    }
    double sum = 0;
    std::size_t count = 0;
    auto take = [&](const nlohmann::json& x) {
      if (!x.is_number() || !std::isfinite(x.get<double>()) || x.get<double>() < 0) {
        throw FormatError(path + ": key '" + key + "': expected non-negative finite scores");
      }
      sum += x.get<double>();
      ++count;
    };
    if (value.is_array()) {
      for (const auto& x : value) take(x);
    } else {
      take(value);
    }
    if (count == 0) throw FormatError(path + ": key '" + key + "': no scores");
    mean[{l, h}] = sum / static_cast<double>(count);  // np.mean over the samples
    layers = std::max(layers, l + 1);
    heads = std::max(heads, h + 1);
  }
  if (static_cast<std::int64_t>(mean.size()) != layers * heads) {
    throw FormatError(path + ": expected a score for every layer-head pair of " +
                      std::to_string(layers) + " layers x " + std::to_string(heads) +
                      " heads, found " + std::to_string(mean.size()));
  }
  at::Tensor out = at::zeros({layers, heads}, at::TensorOptions().dtype(at::kDouble));
  for (const auto& [lh, v] : mean) out[lh.first][lh.second] = v;
  return out;
}

at::Tensor SparseMM::allocate(const at::Tensor& scores, std::int64_t kv_heads, std::int64_t base,
                              double ratio) {
  const std::int64_t layers = scores.size(0), heads = scores.size(1);
  const double total = scores.sum().item<double>();
  const auto opts = at::TensorOptions().dtype(at::kLong);
  // All zeros (random weights find no visual head): the official code divides by zero; every
  // head gets the mean budget instead.
  if (!(total > 0)) return at::full({layers, kv_heads}, base, opts);
  const at::Tensor share =
      (scores / total).view({layers, kv_heads, heads / kv_heads}).sum(-1);  // GQA: sum
  const auto floor = static_cast<std::int64_t>(static_cast<double>(base) * ratio);
  const std::int64_t remain = (base - floor) * layers * kv_heads;
  return at::round(share * static_cast<double>(remain) + static_cast<double>(floor)).to(at::kLong);
}

void SparseMM::check_model(std::int64_t layers, std::int64_t heads, std::int64_t kv_heads) const {
  if (scores_.size(0) != layers || scores_.size(1) != heads || heads % kv_heads != 0) {
    throw ConfigError("sparsemm: key 'scores': " + source_ + " scores " +
                      std::to_string(scores_.size(0)) + " layers x " +
                      std::to_string(scores_.size(1)) + " heads; this model has " +
                      std::to_string(layers) + " x " + std::to_string(heads) +
                      " (a score file for another model)");
  }
}

void SparseMM::bind(const pipeline::MethodContext& context) {
  const model::DecoderShape& s = context.shape();
  check_model(s.num_layers, s.num_heads, s.num_kv_heads);
}

std::vector<std::int64_t> SparseMM::head_counts(std::int64_t layer, std::int64_t layers,
                                                std::int64_t, std::int64_t base,
                                                const at::Tensor& pooled) {
  const std::int64_t kv_heads = pooled.size(0);
  check_model(layers, scores_.size(1), kv_heads);
  auto it = tables_.find(base);
  if (it == tables_.end()) {
    it = tables_.emplace(base, allocate(scores_, kv_heads, base, ratio_)).first;
  }
  const at::Tensor row = it->second[layer].contiguous();
  return {row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + kv_heads};
}

void SparseMM::report_extra(pipeline::ReportEntry& entry) const {
  entry.numbers["ratio"] = ratio_;
  entry.strings["scores"] = source_;
}

}  // namespace glimpse::methods::kv
