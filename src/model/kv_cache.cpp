#include "glimpse/model/kv_cache.h"

#include <ATen/ATen.h>

#include "glimpse/core/error.h"

namespace glimpse::model {

DenseKVCache::DenseKVCache(std::int64_t num_layers) : layers_(num_layers) {}

namespace {

void check_layer(std::int64_t layer, std::size_t layers) {
  if (layer < 0 || layer >= static_cast<std::int64_t>(layers)) {
    throw InputError("KV cache: layer " + std::to_string(layer) + " outside [0, " +
                     std::to_string(layers) + ")");
  }
}

}  // namespace

std::pair<at::Tensor, at::Tensor> DenseKVCache::append(std::int64_t layer, const at::Tensor& key,
                                                       const at::Tensor& value) {
  check_layer(layer, layers_.size());
  Layer& l = layers_[layer];
  const std::int64_t n = key.size(2);
  const std::int64_t needed = l.length + n;
  if (!l.keys.defined() || needed > l.keys.size(2)) {
    // Grow to 1.5x (at least 256 slots more) so that decode steps append without copying.
    const std::int64_t capacity = std::max<std::int64_t>(needed + 256, needed * 3 / 2);
    auto grow = [&](const at::Tensor& old, const at::Tensor& like) {
      at::Tensor fresh =
          at::empty({like.size(0), like.size(1), capacity, like.size(3)}, like.options());
      if (old.defined() && l.length > 0)
        fresh.narrow(2, 0, l.length).copy_(old.narrow(2, 0, l.length));
      return fresh;
    };
    l.keys = grow(l.keys, key);
    l.values = grow(l.values, value);
  }
  l.keys.narrow(2, l.length, n).copy_(key);
  l.values.narrow(2, l.length, n).copy_(value);
  l.length = needed;
  return {l.keys.narrow(2, 0, l.length), l.values.narrow(2, 0, l.length)};
}

std::pair<at::Tensor, at::Tensor> DenseKVCache::get(std::int64_t layer) const {
  check_layer(layer, layers_.size());
  const Layer& l = layers_[layer];
  if (!l.keys.defined()) return {};
  return {l.keys.narrow(2, 0, l.length), l.values.narrow(2, 0, l.length)};
}

void DenseKVCache::keep(std::int64_t layer, const at::Tensor& keep) {
  check_layer(layer, layers_.size());
  Layer& l = layers_[layer];
  const at::Tensor idx = keep.to(at::kLong).contiguous();
  if (idx.dim() != 1) throw InputError("KV cache keep: expected a 1-D index tensor");
  const std::int64_t n = idx.numel();
  if (n > 0) {
    const auto* p = idx.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
      if (p[i] < 0 || p[i] >= l.length || (i > 0 && p[i] <= p[i - 1])) {
        throw InputError("KV cache keep: indices must increase within [0, " +
                         std::to_string(l.length) + ") at layer " + std::to_string(layer));
      }
    }
    // index_select copies first, so writing back into the front of the buffer is safe.
    l.keys.narrow(2, 0, n).copy_(l.keys.narrow(2, 0, l.length).index_select(2, idx));
    l.values.narrow(2, 0, n).copy_(l.values.narrow(2, 0, l.length).index_select(2, idx));
  }
  l.length = n;
}

std::int64_t DenseKVCache::length(std::int64_t layer) const {
  if (layer < 0 || layer >= static_cast<std::int64_t>(layers_.size())) return 0;
  return layers_[layer].length;
}

std::int64_t DenseKVCache::bytes() const {
  std::int64_t total = 0;
  for (const auto& l : layers_) {
    if (!l.keys.defined()) continue;
    const std::int64_t per_token = l.keys.size(0) * l.keys.size(1) * l.keys.size(3) *
                                   static_cast<std::int64_t>(l.keys.element_size());
    total += 2 * per_token * l.length;
  }
  return total;
}

}  // namespace glimpse::model
