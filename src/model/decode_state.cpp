#include <ATen/ATen.h>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"

namespace glimpse::model {

void DecodeState::keep_keys(std::int64_t layer, const at::Tensor& keep) {
  if (!cache) throw InputError("decoding state has no cache");
  const auto n = static_cast<std::int64_t>(key_masks.size());
  if (layer < 0 || layer >= n || !key_masks[layer].defined()) {
    throw InputError("keep_keys: layer " + std::to_string(layer) + " has no cached keys");
  }
  cache->keep(layer, keep);  // validates the indices
  key_masks[layer] = key_masks[layer].index_select(1, keep.to(at::kLong));
}

}  // namespace glimpse::model
