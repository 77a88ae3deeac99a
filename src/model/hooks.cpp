#include "glimpse/model/hooks.h"

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

}  // namespace glimpse::model
