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

// The ragged part of a layer after a per-head keep (KVCache::keep_heads): each sequence and KV
// head keeps its own entries, packed end to end in one buffer of exactly their size (SparseMM's
// flattened cache, sparsemm_utils.py:SparseMM.update_kv). Immutable once made, so that forks
// share it.
struct HeadSegments {
  at::Tensor keys, values;            // [entries, D], head after head
  std::vector<std::int64_t> offsets;  // rows * heads + 1; head (b, h) at [offsets[i], offsets[i+1])
  std::int64_t rows = 0;              // sequences; 1 with a batch > 1: read by every sequence
  std::int64_t heads = 0;             // KV heads
  std::int64_t longest = 0;           // the longest head: the key columns this part spans
  // The cache slot each entry came from, counted over the slots the layer had received when it was
  // first kept per head (prompt order); `covered` slots are behind this part.
  at::Tensor slots;  // [entries] int64
  std::int64_t covered = 0;

  std::int64_t index(std::int64_t row, std::int64_t head) const {
    return (rows == 1 ? 0 : row) * heads + head;
  }
  std::int64_t begin(std::int64_t row, std::int64_t head) const {
    return offsets[index(row, head)];
  }
  std::int64_t length(std::int64_t row, std::int64_t head) const {
    const std::int64_t i = index(row, head);
    return offsets[i + 1] - offsets[i];
  }
  // Sequence `row` alone (a copy of its entries).
  std::shared_ptr<const HeadSegments> row(std::int64_t row) const;
};

// What attention reads at one layer, in key-column order: the ragged part (head (b, h) reads its
// first length(b, h) of `longest` columns; the rest of them are holes it skips), the shared prefix
// segments, each [1, H_kv, n_i, D] and the same for every sequence, then the own rows
// [B, H_kv, T, D].
struct KVView {
  std::shared_ptr<const HeadSegments> ragged;
  std::vector<std::pair<at::Tensor, at::Tensor>> shared;
  at::Tensor keys, values;  // own rows; undefined when the layer holds none
  std::int64_t ragged_length() const { return ragged ? ragged->longest : 0; }
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
  // copy when the layer has one; views otherwise); undefined when empty. A layer kept per head
  // has no such form: UnsupportedError.
  std::pair<at::Tensor, at::Tensor> get(std::int64_t layer) const;
  // Keeps the cached slots `keep` (increasing int64 indices [n] over the whole length, the same
  // for every sequence and head) of a layer, in order, and drops the others (KV eviction and
  // compression). A layer with a shared prefix gets its own copy of the kept entries first.
  virtual void keep(std::int64_t layer, const at::Tensor& keep) = 0;
  // Keeps per sequence and KV head its own key columns: `keep` [B, H_kv, n] int64, each row
  // increasing over [0, length(layer)) after a left padding of -1 (a head that keeps fewer), never
  // a hole of the ragged part. Every kept entry moves into one new ragged part of exactly their
  // size; the old buffers are released (or left to the forks that share them).
  virtual void keep_heads(std::int64_t layer, const at::Tensor& keep) = 0;
  // Key columns of a layer, shared prefix and ragged part (its longest head) included (layers
  // differ once a method prunes tokens).
  virtual std::int64_t length(std::int64_t layer) const = 0;
  // Key slots of each sequence and KV head at a layer, [B, H_kv] int64, shared prefix included:
  // length(layer) for every head unless the layer has a ragged part. Undefined when the layer
  // holds nothing.
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
// place, behind an optional shared prefix, behind an optional ragged part (keep_heads): dense
// until a method keeps per head, and dense again for the tokens that come after.
class DenseKVCache : public KVCache {
 public:
  explicit DenseKVCache(std::int64_t num_layers);
  KVView append(std::int64_t layer, const at::Tensor& key, const at::Tensor& value) override;
  KVView view(std::int64_t layer) const override;
  void keep(std::int64_t layer, const at::Tensor& keep) override;
  void keep_heads(std::int64_t layer, const at::Tensor& keep) override;
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
    std::shared_ptr<const HeadSegments> ragged;
    std::vector<std::pair<at::Tensor, at::Tensor>> shared;  // [1, H_kv, n, D] views
    at::Tensor keys, values;                                // own [B, H_kv, capacity, D]
    std::int64_t length = 0;                                // own slots in use
  };
  KVView view_of(const Layer& l) const;
  std::vector<Layer> layers_;
  std::int64_t batch_ = 0;
};

}  // namespace glimpse::model
