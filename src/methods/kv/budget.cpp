#include "methods/kv/budget.h"

#include <cmath>

namespace glimpse::methods::kv {

KvBudget KvBudget::parse(const core::Config& params, std::int64_t window) {
  const bool ratio = params.has("compression_ratio"), budget = params.has("budget");
  if (ratio == budget) {
    params.fail(ratio ? "budget" : "compression_ratio",
                "give exactly one of compression_ratio (fraction of the prompt's KV removed) and "
                "budget (entries kept per KV head and layer, window included)");
  }
  KvBudget out;
  if (ratio) {
    const double r = params.get_float("compression_ratio");
    if (!(r >= 0.0 && r < 1.0)) {
      params.fail("compression_ratio",
                  "expected the removed fraction in [0, 1), found " + std::to_string(r));
    }
    out.ratio_ = r;
  } else {
    const std::int64_t c = params.get_int("budget");
    if (c <= window) {
      params.fail("budget", "expected more entries than the window of " + std::to_string(window) +
                                " (the window is part of the budget), found " + std::to_string(c));
    }
    out.budget_ = c;
  }
  return out;
}

std::int64_t KvBudget::kept(std::int64_t prompt) const {
  if (budget_) return *budget_;
  // int(T * (1 - r)) as kvpress truncates it.
  return static_cast<std::int64_t>(std::floor(static_cast<double>(prompt) * (1.0 - *ratio_)));
}

}  // namespace glimpse::methods::kv
