#include "methods/prune/selection.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace glimpse::methods::prune {

at::Tensor top_indices(const at::Tensor& scores, std::int64_t k) {
  // A stable descending sort keeps equal scores in index order.
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0,
                                                /*descending=*/true));
  return order.narrow(0, 0, std::min<std::int64_t>(k, order.numel()));
}

at::Tensor pack_keep(const std::vector<at::Tensor>& rows) {
  if (rows.size() == 1) return rows[0];
  std::int64_t widest = 0;
  for (const auto& r : rows) widest = std::max(widest, r.numel());
  at::Tensor keep = at::full({static_cast<std::int64_t>(rows.size()), widest}, -1,
                             at::TensorOptions().dtype(at::kLong));
  for (std::size_t b = 0; b < rows.size(); ++b) {
    const std::int64_t n = rows[b].numel();
    keep[static_cast<std::int64_t>(b)].narrow(0, widest - n, n).copy_(rows[b]);
  }
  return keep;
}

std::int64_t scale_layer(std::int64_t paper_layer, std::int64_t layers) {
  return static_cast<std::int64_t>(
      std::nearbyint(static_cast<double>(paper_layer) * static_cast<double>(layers) / 32.0));
}

}  // namespace glimpse::methods::prune
