#pragma once

// KV caches. Keys are stored after RoPE, as the reference's DynamicCache does. The dense cache
// keeps one length per layer (token pruning inside the model shortens the later layers); the
// logical position (what RoPE sees next) is tracked by the decoding state, not by the cache.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace glimpse::model {

class KVCache {
 public:
  virtual ~KVCache() = default;
  // Appends `key`, `value` [B, H_kv, n, D] to layer `layer` and returns the whole cached keys and
  // values of that layer (views, valid until the next append to that layer).
  virtual std::pair<at::Tensor, at::Tensor> append(std::int64_t layer, const at::Tensor& key,
                                                   const at::Tensor& value) = 0;
  // The cached keys and values of a layer [B, H_kv, length, D] (views; undefined when empty).
  virtual std::pair<at::Tensor, at::Tensor> get(std::int64_t layer) const = 0;
  // Keeps the cached tokens `keep` (increasing int64 indices [n], the same for every row and
  // head) of a layer, in order, and drops the others (KV eviction and compression).
  virtual void keep(std::int64_t layer, const at::Tensor& keep) = 0;
  // Cached tokens of a layer (layers differ once a method prunes tokens inside the model).
  virtual std::int64_t length(std::int64_t layer) const = 0;
  virtual std::int64_t bytes() const = 0;
};

// One contiguous buffer per layer, grown geometrically so that decoding appends in place.
class DenseKVCache : public KVCache {
 public:
  explicit DenseKVCache(std::int64_t num_layers);
  std::pair<at::Tensor, at::Tensor> append(std::int64_t layer, const at::Tensor& key,
                                           const at::Tensor& value) override;
  std::pair<at::Tensor, at::Tensor> get(std::int64_t layer) const override;
  void keep(std::int64_t layer, const at::Tensor& keep) override;
  std::int64_t length(std::int64_t layer) const override;
  std::int64_t bytes() const override;

 private:
  struct Layer {
    at::Tensor keys, values;  // [B, H_kv, capacity, D]
    std::int64_t length = 0;
  };
  std::vector<Layer> layers_;
};

}  // namespace glimpse::model
