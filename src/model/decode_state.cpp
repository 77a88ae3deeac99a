#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"

namespace glimpse::model {
namespace {

// Masks [1, n_i] of several states, right-padded with zeros to the longest and stacked [B, n].
at::Tensor stack_masks(const std::vector<at::Tensor>& masks) {
  std::int64_t longest = 0;
  for (const auto& m : masks) longest = std::max(longest, m.size(1));
  std::vector<at::Tensor> rows;
  for (const auto& m : masks) {
    rows.push_back(m.size(1) == longest ? m : at::constant_pad_nd(m, {0, longest - m.size(1)}, 0));
  }
  return at::cat(rows, 0);
}

}  // namespace

void DecodeState::keep_keys(std::int64_t layer, const at::Tensor& keep) {
  if (!cache) throw InputError("decoding state has no cache");
  const auto n = static_cast<std::int64_t>(key_masks.size());
  if (layer < 0 || layer >= n || !key_masks[layer].defined()) {
    throw InputError("keep_keys: layer " + std::to_string(layer) + " has no cached keys");
  }
  cache->keep(layer, keep);  // validates the indices
  key_masks[layer] = key_masks[layer].index_select(1, keep.to(at::kLong));
}

void DecodeState::keep_heads(std::int64_t layer, const at::Tensor& keep) {
  if (!cache) throw InputError("decoding state has no cache");
  const auto n = static_cast<std::int64_t>(key_masks.size());
  if (layer < 0 || layer >= n || !key_masks[layer].defined()) {
    throw InputError("keep_heads: layer " + std::to_string(layer) + " has no cached keys");
  }
  const at::Tensor& mask = key_masks[layer];
  if (keep.defined() && keep.dim() == 3 && keep.size(0) == mask.size(0)) {
    // A kept column must be a real key of its sequence (padding is never kept).
    const at::Tensor k = keep.to(at::kLong);
    const at::Tensor cols = k.clamp(0, mask.size(1) - 1).flatten(1);
    const at::Tensor masked = mask.gather(1, cols).eq(0).logical_and(k.flatten(1).ge(0));
    if (masked.any().item<bool>()) {
      throw InputError("keep_heads: layer " + std::to_string(layer) +
                       " keeps a masked (padding) column");
    }
  }
  cache->keep_heads(layer, keep);  // validates the rest
  key_masks[layer] = at::ones({mask.size(0), cache->length(layer)}, mask.options());
}

at::Tensor DecodeState::kv_lengths(std::int64_t layer) const {
  if (!cache) throw InputError("decoding state has no cache");
  const auto n = static_cast<std::int64_t>(key_masks.size());
  if (layer < 0 || layer >= n || !key_masks[layer].defined()) {
    throw InputError("kv_lengths: layer " + std::to_string(layer) + " has no cached keys");
  }
  const at::Tensor masked = key_masks[layer].eq(0).sum(1, /*keepdim=*/true);
  return cache->head_lengths(layer) - masked;
}

std::string DecodeState::kv_report() const {
  nlohmann::json kept = nlohmann::json::array();
  std::int64_t full = 0;
  bool ragged = false;
  for (std::int64_t l = 0; cache && l < cache->num_layers(); ++l) {
    const auto li = static_cast<std::size_t>(l);
    if (li >= key_masks.size() || !key_masks[li].defined()) {
      kept.push_back(nlohmann::json::array());
      continue;
    }
    const KVView v = cache->view(l);
    ragged = ragged || v.ragged != nullptr;
    const at::Tensor& like = v.keys.defined()    ? v.keys
                             : !v.shared.empty() ? v.shared.front().first
                                                 : v.ragged->keys;
    const at::Tensor lengths = kv_lengths(l);  // [B, H_kv]
    full += 2 * batch() * past_length() * lengths.size(1) * like.size(-1) *
            static_cast<std::int64_t>(like.element_size());
    const at::Tensor per_head = lengths.sum(0).contiguous();
    const auto* p = per_head.data_ptr<std::int64_t>();
    kept.push_back(std::vector<std::int64_t>(p, p + per_head.numel()));
  }
  return nlohmann::json{{"bytes_full", full},
                        {"bytes_held", cache ? cache->bytes_held() : 0},
                        {"backend", ragged ? "ragged" : "dense"},
                        {"sequences", batch()},
                        {"kept", kept}}
      .dump();
}

at::Tensor DecodeState::kept_slots(std::int64_t layer) const {
  const at::Tensor lengths = kv_lengths(layer);  // validates the layer
  const at::Tensor& mask = key_masks[layer];
  const KVView v = cache->view(layer);
  const std::int64_t batch = mask.size(0), heads = lengths.size(1);
  const std::int64_t ragged_cols = v.ragged_length();
  const auto opts = at::TensorOptions().dtype(at::kLong);
  std::vector<at::Tensor> rows;
  std::int64_t widest = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    // Real dense columns, as slots after what the ragged part covers.
    const at::Tensor dense =
        mask[b].narrow(0, ragged_cols, mask.size(1) - ragged_cols).ne(0).nonzero().view({-1});
    for (std::int64_t h = 0; h < heads; ++h) {
      at::Tensor row = dense + (v.ragged ? v.ragged->covered : 0);
      if (v.ragged) {
        const at::Tensor own =
            v.ragged->slots.narrow(0, v.ragged->begin(b, h), v.ragged->length(b, h));
        row = at::cat({own, row});
      }
      widest = std::max(widest, row.numel());
      rows.push_back(row);
    }
  }
  at::Tensor out = at::full({batch, heads, widest}, -1, opts);
  for (std::int64_t i = 0; i < batch * heads; ++i) {
    const at::Tensor& r = rows[static_cast<std::size_t>(i)];
    out[i / heads][i % heads].narrow(0, widest - r.numel(), r.numel()).copy_(r);
  }
  return out;
}

std::vector<DecodeState> DecodeState::fork(std::int64_t n) {
  if (!cache || past_length() == 0) throw InputError("fork: the session holds no prefix yet");
  if (batch() != 1) {
    throw InputError("fork: the state holds " + std::to_string(batch()) +
                     " sequences; fork one sequence at a time");
  }
  auto caches = cache->fork(n);
  std::vector<DecodeState> out;
  for (auto& c : caches) {
    DecodeState s;
    s.cache = std::move(c);
    s.attention_mask = attention_mask;
    s.key_masks = key_masks;
    s.position_shift = position_shift;
    s.next_position = next_position.clone();
    out.push_back(std::move(s));
  }
  return out;
}

DecodeState DecodeState::stack(std::vector<DecodeState> states) {
  if (states.empty()) throw InputError("stack: no sessions");
  const std::size_t layers = states.front().key_masks.size();
  std::vector<std::unique_ptr<KVCache>> caches;
  std::vector<at::Tensor> masks, positions;
  std::vector<std::vector<at::Tensor>> layer_masks(layers), shifts(layers);
  bool shifted = false;
  for (auto& s : states) {
    if (!s.cache || s.past_length() == 0) throw InputError("stack: a session holds no prefix");
    if (s.key_masks.size() != layers) throw InputError("stack: sessions of different models");
    for (std::int64_t r = 0; r < s.batch(); ++r) {
      masks.push_back(s.attention_mask.narrow(0, r, 1));
      positions.push_back(s.next_position.narrow(0, r, 1));
      for (std::size_t l = 0; l < layers; ++l) {
        layer_masks[l].push_back(s.key_masks[l].narrow(0, r, 1));
        const bool has = l < s.position_shift.size() && s.position_shift[l].defined();
        shifted = shifted || has;
        shifts[l].push_back(has ? s.position_shift[l].narrow(0, r, 1)
                                : at::zeros({1}, at::TensorOptions().dtype(at::kLong)));
      }
    }
    caches.push_back(std::move(s.cache));
  }
  DecodeState out;
  // The cache checks that every state reads the same prefix; the masks then line up slot by slot
  // over it, and the own slots are padded the same way the cache pads them.
  out.cache = DenseKVCache::stack(std::move(caches));
  out.attention_mask = stack_masks(masks);
  out.next_position = at::cat(positions, 0);
  for (auto& m : layer_masks) out.key_masks.push_back(stack_masks(m));
  if (shifted) {
    for (auto& s : shifts) out.position_shift.push_back(at::cat(s, 0));
  }
  for (std::size_t l = 0; l < layers; ++l) {
    if (out.key_masks[l].size(1) != out.cache->length(static_cast<std::int64_t>(l))) {
      throw InputError("stack: the key masks of layer " + std::to_string(l) +
                       " do not match its cache");
    }
  }
  return out;
}

DecodeState DecodeState::row(std::int64_t r) const {
  const auto* dense = dynamic_cast<const DenseKVCache*>(cache.get());
  if (dense == nullptr) throw UnsupportedError("row: only dense caches can be split");
  DecodeState s;
  s.cache = dense->row(r);
  s.attention_mask = attention_mask.narrow(0, r, 1).clone();
  s.next_position = next_position.narrow(0, r, 1).clone();
  for (const auto& m : key_masks) s.key_masks.push_back(m.narrow(0, r, 1).clone());
  for (const auto& p : position_shift)
    s.position_shift.push_back(p.defined() ? p.narrow(0, r, 1).clone() : p);
  return s;
}

}  // namespace glimpse::model
