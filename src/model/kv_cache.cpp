#include "glimpse/model/kv_cache.h"

#include <ATen/ATen.h>

#include <sys/mman.h>

#include <set>

#include "glimpse/core/error.h"

namespace glimpse::model {
namespace {

void check_layer(std::int64_t layer, std::size_t layers) {
  if (layer < 0 || layer >= static_cast<std::int64_t>(layers)) {
    throw InputError("KV cache: layer " + std::to_string(layer) + " outside [0, " +
                     std::to_string(layers) + ")");
  }
}

std::int64_t storage_bytes(const at::Tensor& t) {
  return t.defined() ? static_cast<std::int64_t>(t.storage().nbytes()) : 0;
}

const void* storage_id(const at::Tensor& t) {
  return t.storage().unsafeGetStorageImpl();
}

// KV buffers of at least this size are mapped from the system on their own, so that freeing one
// (an eviction, a compression, a closed session) returns its pages at once whatever the host's
// malloc keeps (glibc serves blocks below its mmap threshold, which rises to 32 MB once large
// temporaries are freed, from heaps that it rarely trims).
constexpr std::size_t kMappedBytes = std::size_t{1} << 20;

at::Tensor kv_buffer(at::IntArrayRef sizes, const at::TensorOptions& options, bool zero = false) {
  std::size_t bytes = c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
  for (const auto s : sizes) bytes *= static_cast<std::size_t>(s);
  if (bytes < kMappedBytes) return zero ? at::zeros(sizes, options) : at::empty(sizes, options);
  // Anonymous pages are zero.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return zero ? at::zeros(sizes, options) : at::empty(sizes, options);
  return at::from_blob(
      p, sizes, [bytes](void* q) { munmap(q, bytes); }, options);
}

// Slots allocated beyond a first append: room for a short answer without regrowing, small enough
// that a prefix frozen for forks wastes little.
constexpr std::int64_t kFirstSlack = 64;

}  // namespace

std::int64_t KVView::shared_length() const {
  std::int64_t n = 0;
  for (const auto& [k, v] : shared) n += k.size(2);
  return n;
}

std::int64_t KVView::length() const {
  return ragged_length() + shared_length() + (keys.defined() ? keys.size(2) : 0);
}

std::pair<at::Tensor, at::Tensor> KVCache::get(std::int64_t layer) const {
  const KVView v = view(layer);
  if (v.ragged) {
    throw UnsupportedError("KV cache: layer " + std::to_string(layer) +
                           " is kept per head (ragged); it has no dense [B, H, T, D] form for "
                           "probes, edits or attention outputs");
  }
  if (v.shared.empty()) return {v.keys, v.values};
  const std::int64_t b = std::max<std::int64_t>(batch(), 1);
  std::vector<at::Tensor> ks, vs;
  for (const auto& [k, val] : v.shared) {
    ks.push_back(k.expand({b, k.size(1), k.size(2), k.size(3)}));
    vs.push_back(val.expand({b, val.size(1), val.size(2), val.size(3)}));
  }
  if (v.keys.defined()) {
    ks.push_back(v.keys);
    vs.push_back(v.values);
  }
  return {at::cat(ks, 2), at::cat(vs, 2)};
}

std::int64_t KVCache::bytes_held() const {
  std::int64_t total = 0;
  for (const auto& s : storages()) total += s.bytes;
  return total;
}

std::int64_t KVCache::bytes_shared() const {
  std::int64_t total = 0;
  for (const auto& s : storages()) total += s.shared ? s.bytes : 0;
  return total;
}

std::int64_t kv_bytes_held(const std::vector<const KVCache*>& caches) {
  std::set<const void*> seen;
  std::int64_t total = 0;
  for (const KVCache* c : caches) {
    if (c == nullptr) continue;
    for (const auto& s : c->storages()) {
      if (seen.insert(s.id).second) total += s.bytes;
    }
  }
  return total;
}

DenseKVCache::DenseKVCache(std::int64_t num_layers) : layers_(num_layers) {}

KVView DenseKVCache::view_of(const Layer& l) const {
  KVView v;
  v.ragged = l.ragged;
  v.shared = l.shared;
  if (l.keys.defined()) {
    v.keys = l.keys.narrow(2, 0, l.length);
    v.values = l.values.narrow(2, 0, l.length);
  }
  return v;
}

KVView DenseKVCache::append(std::int64_t layer, const at::Tensor& key, const at::Tensor& value) {
  check_layer(layer, layers_.size());
  if (key.dim() != 4 || value.dim() != 4 || key.size(0) != value.size(0) ||
      key.size(2) != value.size(2)) {
    throw InputError("KV cache append: keys " + c10::str(key.sizes()) + " and values " +
                     c10::str(value.sizes()) + " do not fit");
  }
  if (batch_ == 0) batch_ = key.size(0);
  if (key.size(0) != batch_) {
    throw InputError("KV cache append: batch of " + std::to_string(key.size(0)) +
                     " sequences, the cache holds " + std::to_string(batch_));
  }
  Layer& l = layers_[layer];
  const std::int64_t n = key.size(2);
  const std::int64_t needed = l.length + n;
  if (!l.keys.defined() || needed > l.keys.size(2)) {
    // The first append (a prefill) gets a little slack; later growth is 1.5x so that decode
    // steps append without copying.
    const std::int64_t capacity = l.keys.defined()
                                      ? std::max<std::int64_t>(needed + 256, needed * 3 / 2)
                                      : needed + kFirstSlack;
    auto grow = [&](const at::Tensor& old, const at::Tensor& like) {
      at::Tensor fresh =
          kv_buffer({like.size(0), like.size(1), capacity, like.size(3)}, like.options());
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
  return view_of(l);
}

KVView DenseKVCache::view(std::int64_t layer) const {
  check_layer(layer, layers_.size());
  return view_of(layers_[layer]);
}

void DenseKVCache::keep(std::int64_t layer, const at::Tensor& keep) {
  check_layer(layer, layers_.size());
  Layer& l = layers_[layer];
  const at::Tensor idx = keep.to(at::kLong).contiguous();
  if (idx.dim() != 1) throw InputError("KV cache keep: expected a 1-D index tensor");
  if (l.ragged) {
    throw UnsupportedError("KV cache keep: layer " + std::to_string(layer) +
                           " is kept per head already; keep its heads (keep_heads)");
  }
  const std::int64_t total = length(layer);
  const std::int64_t n = idx.numel();
  const auto* p = idx.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= total || (i > 0 && p[i] <= p[i - 1])) {
      throw InputError("KV cache keep: indices must increase within [0, " + std::to_string(total) +
                       ") at layer " + std::to_string(layer));
    }
  }
  if (!l.shared.empty()) {
    // Copy on write: the shared prefix stays as it is for the other readers; this cache gets
    // its own copy of the kept entries.
    auto [k, v] = get(layer);
    l.shared.clear();
    l.keys = k.index_select(2, idx);
    l.values = v.index_select(2, idx);
    l.length = n;
    return;
  }
  if (n + kFirstSlack < l.keys.size(2) / 2) {
    // Most of the buffer goes: move the kept entries to a buffer of their size (plus slack), so
    // that the memory is released rather than kept at the old capacity.
    auto shrink = [&](const at::Tensor& old) {
      at::Tensor fresh =
          kv_buffer({old.size(0), old.size(1), n + kFirstSlack, old.size(3)}, old.options());
      fresh.narrow(2, 0, n).copy_(old.narrow(2, 0, l.length).index_select(2, idx));
      return fresh;
    };
    l.keys = shrink(l.keys);
    l.values = shrink(l.values);
  } else if (n > 0) {
    // index_select copies first, so writing back into the front of the buffer is safe.
    l.keys.narrow(2, 0, n).copy_(l.keys.narrow(2, 0, l.length).index_select(2, idx));
    l.values.narrow(2, 0, n).copy_(l.values.narrow(2, 0, l.length).index_select(2, idx));
  }
  l.length = n;
}

std::int64_t DenseKVCache::length(std::int64_t layer) const {
  if (layer < 0 || layer >= static_cast<std::int64_t>(layers_.size())) return 0;
  const Layer& l = layers_[layer];
  std::int64_t n = l.length + (l.ragged ? l.ragged->longest : 0);
  for (const auto& [k, v] : l.shared) n += k.size(2);
  return n;
}

at::Tensor DenseKVCache::head_lengths(std::int64_t layer) const {
  check_layer(layer, layers_.size());
  const Layer& l = layers_[layer];
  const at::Tensor& like = l.keys.defined()   ? l.keys
                           : l.shared.empty() ? at::Tensor()
                                              : l.shared.front().first;
  if (!l.ragged) {
    if (!like.defined()) return at::Tensor();
    return at::full({batch_, like.size(1)}, length(layer), at::TensorOptions().dtype(at::kLong));
  }
  const HeadSegments& r = *l.ragged;
  const std::int64_t dense = length(layer) - r.longest;
  at::Tensor out = at::empty({batch_, r.heads}, at::TensorOptions().dtype(at::kLong));
  auto* p = out.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < batch_; ++b) {
    for (std::int64_t h = 0; h < r.heads; ++h) p[b * r.heads + h] = r.length(b, h) + dense;
  }
  return out;
}

std::int64_t DenseKVCache::bytes_logical() const {
  std::int64_t total = 0;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const KVView v = view_of(layers_[i]);
    const at::Tensor& like = v.keys.defined()    ? v.keys
                             : !v.shared.empty() ? v.shared.front().first
                             : v.ragged          ? v.ragged->keys
                                                 : at::Tensor();
    if (!like.defined()) continue;
    const std::int64_t heads = v.ragged ? v.ragged->heads : like.size(1);
    const std::int64_t per_slot =
        heads * like.size(-1) * static_cast<std::int64_t>(like.element_size());
    total += 2 * per_slot * batch_ * length(static_cast<std::int64_t>(i));
  }
  return total;
}

std::vector<KVCache::Storage> DenseKVCache::storages() const {
  std::vector<Storage> out;
  std::set<const void*> seen;
  auto add = [&](const at::Tensor& t, bool shared) {
    if (t.defined() && seen.insert(storage_id(t)).second)
      out.push_back({storage_id(t), storage_bytes(t), shared});
  };
  for (const auto& l : layers_) {
    if (l.ragged) {
      // Forks share a ragged part through the pointer (and the part's slots are bookkeeping).
      add(l.ragged->keys, l.ragged.use_count() > 1);
      add(l.ragged->values, l.ragged.use_count() > 1);
    }
    for (const auto& [k, v] : l.shared) {
      add(k, true);
      add(v, true);
    }
    add(l.keys, false);
    add(l.values, false);
  }
  return out;
}

std::vector<std::unique_ptr<KVCache>> DenseKVCache::fork(std::int64_t n) {
  if (n < 1) throw InputError("fork: expected at least 1 fork, found " + std::to_string(n));
  if (batch_ > 1) {
    throw InputError("fork: the cache holds " + std::to_string(batch_) +
                     " sequences; fork one sequence at a time");
  }
  // Freeze: the own rows become a shared segment in place (their storage, slack included, is
  // what the forks then share).
  for (auto& l : layers_) {
    if (l.keys.defined() && l.length > 0) {
      l.shared.emplace_back(l.keys.narrow(2, 0, l.length), l.values.narrow(2, 0, l.length));
    }
    l.keys = at::Tensor();
    l.values = at::Tensor();
    l.length = 0;
  }
  std::vector<std::unique_ptr<KVCache>> out;
  for (std::int64_t i = 0; i < n; ++i) {
    auto c = std::make_unique<DenseKVCache>(num_layers());
    c->batch_ = batch_;
    for (std::size_t j = 0; j < layers_.size(); ++j) {
      c->layers_[j].ragged = layers_[j].ragged;
      c->layers_[j].shared = layers_[j].shared;
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::unique_ptr<DenseKVCache> DenseKVCache::stack(std::vector<std::unique_ptr<KVCache>> caches) {
  if (caches.empty()) throw InputError("stack: no caches");
  std::vector<DenseKVCache*> dense;
  for (const auto& c : caches) {
    auto* d = dynamic_cast<DenseKVCache*>(c.get());
    if (d == nullptr) throw UnsupportedError("stack: only dense caches can be stacked");
    dense.push_back(d);
  }
  const std::int64_t layers = dense.front()->num_layers();
  auto out = std::make_unique<DenseKVCache>(layers);
  for (const auto* d : dense) {
    if (d->num_layers() != layers) throw InputError("stack: caches of different models");
    out->batch_ += std::max<std::int64_t>(d->batch_, 1);
  }
  for (std::int64_t i = 0; i < layers; ++i) {
    const Layer& first = dense.front()->layers_[i];
    std::int64_t longest = 0;
    const at::Tensor* like = nullptr;
    for (const auto* d : dense) {
      const Layer& l = d->layers_[i];
      bool same = l.shared.size() == first.shared.size() && l.ragged == first.ragged;
      for (std::size_t s = 0; same && s < l.shared.size(); ++s) {
        same = l.shared[s].first.is_same(first.shared[s].first);
      }
      if (!same) {
        throw InputError("stack: the sessions do not share one prefix at layer " +
                         std::to_string(i) + " (stack forks of one session)");
      }
      longest = std::max(longest, l.length);
      if (l.keys.defined()) like = &l.keys;
    }
    Layer& o = out->layers_[i];
    o.shared = first.shared;
    o.ragged = first.ragged;
    if (o.ragged && o.ragged->rows != 1) {
      throw UnsupportedError("stack: layer " + std::to_string(i) +
                             " holds a ragged part per sequence; stack forks taken after it");
    }
    if (like == nullptr) continue;
    // Own rows right-padded to the longest; the decoding state masks the padding slots.
    const std::int64_t capacity = longest + kFirstSlack;
    o.keys = kv_buffer({out->batch_, like->size(1), capacity, like->size(3)}, like->options(),
                       /*zero=*/true);
    o.values = kv_buffer(o.keys.sizes(), o.keys.options(), /*zero=*/true);
    o.length = longest;
    std::int64_t row = 0;
    for (const auto* d : dense) {
      const Layer& l = d->layers_[i];
      const std::int64_t b = std::max<std::int64_t>(d->batch_, 1);
      if (l.keys.defined() && l.length > 0) {
        o.keys.narrow(0, row, b).narrow(2, 0, l.length).copy_(l.keys.narrow(2, 0, l.length));
        o.values.narrow(0, row, b).narrow(2, 0, l.length).copy_(l.values.narrow(2, 0, l.length));
      }
      row += b;
    }
  }
  return out;
}

std::unique_ptr<DenseKVCache> DenseKVCache::row(std::int64_t r) const {
  if (r < 0 || r >= batch_) {
    throw InputError("KV cache: sequence " + std::to_string(r) + " outside [0, " +
                     std::to_string(batch_) + ")");
  }
  auto out = std::make_unique<DenseKVCache>(num_layers());
  out->batch_ = 1;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    Layer& o = out->layers_[i];
    o.shared = l.shared;
    if (l.ragged && l.ragged->rows > 1) {
      o.ragged = l.ragged->row(r);
    } else {
      o.ragged = l.ragged;
    }
    if (!l.keys.defined()) continue;
    const std::int64_t capacity = l.length + kFirstSlack;
    o.keys = kv_buffer({1, l.keys.size(1), capacity, l.keys.size(3)}, l.keys.options());
    o.values = kv_buffer(o.keys.sizes(), o.keys.options());
    o.keys.narrow(2, 0, l.length).copy_(l.keys.narrow(0, r, 1).narrow(2, 0, l.length));
    o.values.narrow(2, 0, l.length).copy_(l.values.narrow(0, r, 1).narrow(2, 0, l.length));
    o.length = l.length;
  }
  return out;
}

std::shared_ptr<const HeadSegments> HeadSegments::row(std::int64_t r) const {
  if (r < 0 || (rows > 1 && r >= rows)) {
    throw InputError("KV cache: sequence " + std::to_string(r) + " outside the ragged part's " +
                     std::to_string(rows));
  }
  auto out = std::make_shared<HeadSegments>();
  out->rows = 1;
  out->heads = heads;
  out->covered = covered;
  const std::int64_t first = begin(r, 0), n = offsets[index(r, heads - 1) + 1] - first;
  out->keys = keys.narrow(0, first, n).clone();
  out->values = values.narrow(0, first, n).clone();
  out->slots = slots.narrow(0, first, n).clone();
  out->offsets.push_back(0);
  for (std::int64_t h = 0; h < heads; ++h) {
    out->offsets.push_back(out->offsets.back() + length(r, h));
    out->longest = std::max(out->longest, length(r, h));
  }
  return out;
}

void DenseKVCache::keep_heads(std::int64_t layer, const at::Tensor& keep) {
  check_layer(layer, layers_.size());
  Layer& l = layers_[layer];
  const KVView v = view_of(l);
  const at::Tensor& like = v.keys.defined()    ? v.keys
                           : !v.shared.empty() ? v.shared.front().first
                           : v.ragged          ? v.ragged->keys
                                               : at::Tensor();
  const std::string where = "KV cache keep_heads at layer " + std::to_string(layer);
  if (!like.defined()) throw InputError(where + ": the layer holds no keys");
  const std::int64_t heads = v.ragged ? v.ragged->heads : like.size(1);
  const std::int64_t d = like.size(-1), dv = v.ragged ? v.ragged->values.size(-1)
                                             : v.values.defined()
                                                 ? v.values.size(-1)
                                                 : v.shared.front().second.size(-1);
  if (!keep.defined() || keep.dim() != 3 || keep.size(0) != batch_ || keep.size(1) != heads) {
    throw InputError(where + ": expected indices [" + std::to_string(batch_) + ", " +
                     std::to_string(heads) + ", n], found " +
                     (keep.defined() ? c10::str(keep.sizes()) : std::string("none")));
  }
  const at::Tensor idx = keep.to(at::kLong).contiguous();
  const std::int64_t n = idx.size(2), total = length(layer);
  const std::int64_t ragged_cols = v.ragged_length(), own = l.length;
  // Where every kept entry comes from: (source part, row in that part's [rows, D] form) and the
  // slot it stands for. Parts: 0 ragged, 1..S shared segments, S+1 own rows.
  const std::size_t parts = v.shared.size() + 2;
  std::vector<std::vector<std::int64_t>> from(parts), to(parts);
  std::vector<std::int64_t> offsets{0}, slots;
  std::int64_t longest = 0;
  const auto* p = idx.data_ptr<std::int64_t>();
  const std::int64_t* rslots = v.ragged ? v.ragged->slots.data_ptr<std::int64_t>() : nullptr;
  for (std::int64_t b = 0; b < batch_; ++b) {
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t* row = p + (b * heads + h) * n;
      std::int64_t count = 0, last = -1;
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = row[i];
        if (c < 0 && count == 0) continue;  // left padding
        if (c < 0 || c >= total || c <= last) {
          throw InputError(where + ": head (" + std::to_string(b) + ", " + std::to_string(h) +
                           ") must keep increasing columns in [0, " + std::to_string(total) +
                           ") after a left padding of -1, found " + std::to_string(c));
        }
        last = c;
        const std::int64_t dest = static_cast<std::int64_t>(slots.size());
        if (c < ragged_cols) {
          if (c >= v.ragged->length(b, h)) {
            throw InputError(where + ": column " + std::to_string(c) + " of head (" +
                             std::to_string(b) + ", " + std::to_string(h) +
                             ") is a hole of the ragged part (the head holds " +
                             std::to_string(v.ragged->length(b, h)) + ")");
          }
          const std::int64_t src = v.ragged->begin(b, h) + c;
          from[0].push_back(src);
          to[0].push_back(dest);
          slots.push_back(rslots[src]);
        } else {
          std::int64_t rest = c - ragged_cols;
          std::size_t part = 1;
          for (; part <= v.shared.size(); ++part) {
            const std::int64_t len = v.shared[part - 1].first.size(2);
            if (rest < len) {
              from[part].push_back(h * len + rest);
              break;
            }
            rest -= len;
          }
          if (part > v.shared.size()) from[part].push_back((b * heads + h) * own + rest);
          to[part].push_back(dest);
          slots.push_back(v.ragged ? v.ragged->covered + c - ragged_cols : c);
        }
        ++count;
      }
      offsets.push_back(offsets.back() + count);
      longest = std::max(longest, count);
    }
  }
  auto out = std::make_shared<HeadSegments>();
  const auto entries = static_cast<std::int64_t>(slots.size());
  out->keys = kv_buffer({entries, d}, like.options());
  out->values = kv_buffer({entries, dv}, like.options());
  auto gather = [&](std::size_t part, const at::Tensor& k, const at::Tensor& val) {
    if (from[part].empty()) return;
    const auto opts = at::TensorOptions().dtype(at::kLong);
    const at::Tensor src = at::tensor(from[part], opts), dst = at::tensor(to[part], opts);
    out->keys.index_copy_(0, dst, k.index_select(0, src));
    out->values.index_copy_(0, dst, val.index_select(0, src));
  };
  if (v.ragged) gather(0, v.ragged->keys, v.ragged->values);
  for (std::size_t s = 0; s < v.shared.size(); ++s) {
    const auto& [k, val] = v.shared[s];
    gather(s + 1, k[0].reshape({-1, d}), val[0].reshape({-1, dv}));
  }
  if (own > 0) gather(parts - 1, v.keys.reshape({-1, d}), v.values.reshape({-1, dv}));
  out->offsets = std::move(offsets);
  out->slots = at::tensor(slots, at::TensorOptions().dtype(at::kLong));
  out->rows = batch_;
  out->heads = heads;
  out->longest = longest;
  out->covered = v.ragged ? v.ragged->covered + total - ragged_cols : total;
  l.ragged = std::move(out);
  l.shared.clear();
  l.keys = at::Tensor();
  l.values = at::Tensor();
  l.length = 0;
}

}  // namespace glimpse::model
