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

at::Tensor checked_keep(const at::Tensor& keep, std::int64_t length, const std::string& site) {
  const bool ok =
      keep.defined() && keep.dim() == 1 && keep.numel() <= length &&
      (keep.numel() > 0 &&
       (keep.min().item<std::int64_t>() >= 0 && keep.max().item<std::int64_t>() < length &&
        (keep.numel() < 2 || keep.diff().gt(0).all().item<bool>())));
  if (!ok) {
    throw InputError(site + ": keep must be increasing indices [S'] (S' >= 1) into the " +
                     std::to_string(length) + " tokens of the sequence");
  }
  return keep.to(at::kLong);
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
