#include "methods/kv/pyramidkv.h"

#include <ATen/ATen.h>

namespace glimpse::methods::kv {

PyramidKV::PyramidKV(KvBudget budget, WindowOptions options, std::int64_t beta)
    : WindowCompressor(budget, options), beta_(beta) {}

std::unique_ptr<pipeline::Method> PyramidKV::create(const core::Config& params) {
  const WindowOptions options = parse_window_options(params, {"beta"});
  const std::int64_t beta = params.get_int("beta", 20);
  if (beta < 1) params.fail("beta", "expected beta >= 1, found " + std::to_string(beta));
  return std::make_unique<PyramidKV>(KvBudget::parse(params, options.window), options, beta);
}

std::int64_t PyramidKV::layer_count(std::int64_t layer, std::int64_t layers, std::int64_t prompt,
                                    std::int64_t capacity, std::int64_t window, std::int64_t beta) {
  const std::int64_t base = capacity - window;
  // Between the prompt fitting and twice the base, the official code falls back to SnapKV.
  if (prompt < 2 * base) return base;
  std::int64_t min_num = base / beta, max_num = 2 * base - min_num;
  if (max_num >= prompt - window) {
    max_num = prompt - window;
    min_num = 2 * base - max_num;
  }
  const std::int64_t steps = layers > 1 ? (max_num - min_num) / (layers - 1) : 0;
  return max_num - layer * steps;
}

std::vector<std::int64_t> PyramidKV::head_counts(std::int64_t layer, std::int64_t layers,
                                                 std::int64_t prompt, std::int64_t base,
                                                 const at::Tensor& pooled) {
  const std::int64_t w = options().window;
  return std::vector<std::int64_t>(static_cast<std::size_t>(pooled.size(0)),
                                   layer_count(layer, layers, prompt, base + w, w, beta_));
}

void PyramidKV::report_extra(pipeline::ReportEntry& entry) const {
  entry.numbers["beta"] = static_cast<double>(beta_);
}

}  // namespace glimpse::methods::kv
