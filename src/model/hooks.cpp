#include "glimpse/model/hooks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>

#include "glimpse/core/error.h"

namespace glimpse::model {

double DecoderShape::layer_flops(std::int64_t tokens, std::int64_t keys) const {
  const double q = static_cast<double>(num_heads * head_dim);
  const double kv = static_cast<double>(num_kv_heads * head_dim);
  const double h = static_cast<double>(hidden_size);
  // q, k, v, o projections and the three MLP matrices, 2 FLOPs per multiply-add.
  const double params = h * q + 2 * h * kv + q * h + 3 * h * static_cast<double>(intermediate_size);
  const double attention = 2.0 * 2.0 * q * static_cast<double>(keys);  // QK^T and PV per token
  return static_cast<double>(tokens) * (2 * params + attention);
}

double DecoderShape::kv_fill_flops(std::int64_t tokens) const {
  const double kv = static_cast<double>(num_kv_heads * head_dim);
  return static_cast<double>(tokens) * 2.0 * 2.0 * static_cast<double>(hidden_size) * kv;
}

at::Tensor checked_keep(const at::Tensor& keep, std::int64_t length, const std::string& site,
                        std::int64_t batch) {
  bool ok = keep.defined() && keep.numel() > 0 && keep.size(-1) <= length &&
            (keep.dim() == 1 || (keep.dim() == 2 && batch > 0 && keep.size(0) == batch));
  if (ok) {
    const at::Tensor k = keep.to(at::kLong);
    const at::Tensor valid = k.ge(0);
    // Padding (-1) only on the left: once a row has a token, every later slot is one.
    const bool left_padded =
        k.dim() == 1
            ? valid.all().item<bool>()
            : (k.size(1) < 2 || !valid.narrow(1, 0, k.size(1) - 1)
                                     .logical_and(valid.narrow(1, 1, k.size(1) - 1).logical_not())
                                     .any()
                                     .item<bool>());
    const bool in_range = k.max().item<std::int64_t>() < length &&
                          k.min().item<std::int64_t>() >= -1 && valid.any(-1).all().item<bool>();
    // Increasing over the valid slots (a padded slot before a token is -1 < token).
    const bool increasing =
        k.size(-1) < 2 ||
        k.diff(1, -1).gt(0).logical_or(k.narrow(-1, 0, k.size(-1) - 1).lt(0)).all().item<bool>();
    ok = left_padded && in_range && increasing;
    if (ok) return k;
  }
  throw InputError(
      site + ": keep must be increasing indices [S'] (S' >= 1) into the " + std::to_string(length) +
      " tokens of the sequence" +
      (batch > 0 ? ", or [" + std::to_string(batch) + ", S'] left-padded with -1" : std::string()));
}

std::vector<std::int64_t> RowSelection::resolve(std::int64_t length, const char* site) const {
  std::vector<std::int64_t> rows;
  if (all) {
    rows.resize(static_cast<std::size_t>(length));
    for (std::int64_t i = 0; i < length; ++i) rows[static_cast<std::size_t>(i)] = i;
    return rows;
  }
  for (const auto r : indices) {
    if (r < 0 || r >= length) {
      throw InputError(std::string(site) + ": row " + std::to_string(r) + " outside [0, " +
                       std::to_string(length) + ")");
    }
    rows.push_back(r);
  }
  for (std::int64_t i = std::max<std::int64_t>(0, length - last); i < length; ++i)
    rows.push_back(i);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

}  // namespace glimpse::model
