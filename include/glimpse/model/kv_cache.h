#pragma once

// KV caches. Keys are stored after RoPE, as the reference's DynamicCache does, so a cached entry
// carries its position with it and the cache never needs positions: the decoding state keeps the
// logical position (what RoPE sees next) apart from the physical slots.
//
// A cache of B sequences holds, per layer, an optional shared prefix (blocks of batch 1 that
// several caches read and none writes: the prompt that Session::fork shares among its forks) and
// the cache's own rows [B, H_kv, slots, D], where each sequence may have padding slots (masked by
// the decoding state's key masks) so that sequences of different lengths decode in one batch.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace glimpse::model {

// What attention reads at one layer: the shared prefix segments, each [1, H_kv, n_i, D] and the
// same for every sequence, then the own rows [B, H_kv, T, D]. Key slot j of the layer is slot j
// of the concatenation.
struct KVView {
  std::vector<std::pair<at::Tensor, at::Tensor>> shared;
  at::Tensor keys, values;  // own rows; undefined when the layer holds none
  std::int64_t shared_length() const;
  std::int64_t length() const;
};

class KVCache {
 public:
  virtual ~KVCache() = default;
  // Appends `key`, `value` [B, H_kv, n, D] to the own rows of layer `layer` and returns what
  // attention reads (views, valid until the next change of that layer).
  virtual KVView append(std::int64_t layer, const at::Tensor& key, const at::Tensor& value) = 0;
  virtual KVView view(std::int64_t layer) const = 0;
  // The whole cached keys and values of a layer [B, H_kv, length, D], shared prefix included (a
  // copy when the layer has one; views otherwise); undefined when empty.
  std::pair<at::Tensor, at::Tensor> get(std::int64_t layer) const;
  // Keeps the cached slots `keep` (increasing int64 indices [n] over the whole length, the same
  // for every sequence and head) of a layer, in order, and drops the others (KV eviction and
  // compression). A layer with a shared prefix gets its own copy of the kept entries first.
  virtual void keep(std::int64_t layer, const at::Tensor& keep) = 0;
  // Key slots of a layer, shared prefix included (layers differ once a method prunes tokens).
  virtual std::int64_t length(std::int64_t layer) const = 0;
  // Key slots of each sequence and KV head at a layer, [B, H_kv] int64, shared prefix included.
  // The dense cache holds length(layer) for all; a ragged backend (per-head budgets) differs per
  // head. Undefined when the layer holds nothing.
  virtual at::Tensor head_lengths(std::int64_t layer) const = 0;
  virtual std::int64_t num_layers() const = 0;
  // Sequences (B); 0 before the first append.
  virtual std::int64_t batch() const = 0;

  // Bytes of the storage this cache references: own buffers at their capacity plus the shared
  // blocks, each block counted once (what is really allocated for it).
  std::int64_t bytes_held() const;
  // Bytes of the shared blocks alone (held once however many caches read them).
  std::int64_t bytes_shared() const;
  // Bytes a dense cache of the same entries would need: B x slots x H_kv x D x 2 per layer.
  virtual std::int64_t bytes_logical() const = 0;
  // The storages referenced: (identity, bytes, shared) triples, so that a caller can count the
  // bytes of several caches that share blocks (kv_bytes_held).
  struct Storage {
    const void* id = nullptr;
    std::int64_t bytes = 0;
    bool shared = false;
  };
  virtual std::vector<Storage> storages() const = 0;

  // Freezes the own rows into a shared block (batch 1 only) and returns `n` caches that read the
  // same shared prefix and have empty own rows; this cache reads the block too. No key or value
  // is copied.
  virtual std::vector<std::unique_ptr<KVCache>> fork(std::int64_t n) = 0;
};

// The bytes held by several caches together, each storage counted once.
std::int64_t kv_bytes_held(const std::vector<const KVCache*>& caches);

// One contiguous buffer of own rows per layer, grown geometrically so that decoding appends in
// place, behind an optional shared prefix.
class DenseKVCache : public KVCache {
 public:
  explicit DenseKVCache(std::int64_t num_layers);
  KVView append(std::int64_t layer, const at::Tensor& key, const at::Tensor& value) override;
  KVView view(std::int64_t layer) const override;
  void keep(std::int64_t layer, const at::Tensor& keep) override;
  std::int64_t length(std::int64_t layer) const override;
  at::Tensor head_lengths(std::int64_t layer) const override;
  std::int64_t num_layers() const override { return static_cast<std::int64_t>(layers_.size()); }
  std::int64_t batch() const override { return batch_; }
  std::int64_t bytes_logical() const override;
  std::vector<Storage> storages() const override;
  std::vector<std::unique_ptr<KVCache>> fork(std::int64_t n) override;

  // One cache of the sequences of `caches` (in order), which must read the same shared prefix
  // (forks of one cache): own rows are copied and right-padded with zeros to the longest per
  // layer, for the caller to mask.
  static std::unique_ptr<DenseKVCache> stack(std::vector<std::unique_ptr<KVCache>> caches);
  // Sequence `row` alone (own rows copied, shared prefix shared).
  std::unique_ptr<DenseKVCache> row(std::int64_t row) const;

 private:
  struct Layer {
    std::vector<std::pair<at::Tensor, at::Tensor>> shared;  // [1, H_kv, n, D] views
    at::Tensor keys, values;                                // own [B, H_kv, capacity, D]
    std::int64_t length = 0;                                // own slots in use
  };
  KVView view_of(const Layer& l) const;
  std::vector<Layer> layers_;
  std::int64_t batch_ = 0;
};

}  // namespace glimpse::model
