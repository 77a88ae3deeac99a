#include "methods/kv/adakv.h"

#include <ATen/ATen.h>

#include <cmath>

#include "methods/prune/selection.h"

namespace glimpse::methods::kv {

AdaKV::AdaKV(KvBudget budget, WindowOptions options, double floor, bool normalize)
    : WindowCompressor(budget, options), floor_(floor), normalize_(normalize) {}

std::unique_ptr<pipeline::Method> AdaKV::create(const core::Config& params) {
  const WindowOptions options = parse_window_options(params, {"floor", "normalize"});
  const double floor = params.get_float("floor", 0.2);
  if (!(floor >= 0.0 && floor <= 1.0)) {
    params.fail("floor",
                "expected the guaranteed fraction in [0, 1], found " + std::to_string(floor));
  }
  const bool normalize = params.get_bool("normalize", true);
  return std::make_unique<AdaKV>(KvBudget::parse(params, options.window), options, floor,
                                 normalize);
}

std::vector<std::int64_t> AdaKV::allocate(const at::Tensor& pooled, std::int64_t base, double floor,
                                          bool normalize) {
  const std::int64_t heads = pooled.size(0), n = pooled.size(1);
  at::Tensor sorted =
      std::get<0>(at::sort(pooled, /*stable=*/true, /*dim=*/-1, /*descending=*/true));
  if (normalize) {
    // Each head's scores weighted by the share of its mass in its own top base.
    sorted = sorted * (sorted.narrow(1, 0, base).sum(1, true) / sorted.sum(1, true));
  }
  const at::Tensor winners =
      prune::top_indices(sorted.reshape({-1}), heads * base).div(n, /*rounding_mode=*/"floor");
  const at::Tensor won = at::bincount(winners, {}, heads);
  const auto floor_capacity = static_cast<std::int64_t>(static_cast<double>(base) * floor);
  std::vector<std::int64_t> out;
  for (std::int64_t h = 0; h < heads; ++h) {
    // torch.round: half to even, as nearbyint.
    out.push_back(static_cast<std::int64_t>(
        std::nearbyint(static_cast<double>(won[h].item<std::int64_t>()) * (1.0 - floor) +
                       static_cast<double>(floor_capacity))));
  }
  return out;
}

std::vector<std::int64_t> AdaKV::head_counts(std::int64_t, std::int64_t, std::int64_t,
                                             std::int64_t base, const at::Tensor& pooled) {
  return allocate(pooled, base, floor_, normalize_);
}

void AdaKV::report_extra(pipeline::ReportEntry& entry) const {
  entry.numbers["floor"] = floor_;
  entry.numbers["normalize"] = normalize_ ? 1 : 0;
}

}  // namespace glimpse::methods::kv
