#include "glimpse/model/token_layout.h"

#include <ATen/ATen.h>

namespace glimpse::model {

at::Tensor TokenLayout::visual_indices(std::int64_t b) const {
  return modality[b].ne(static_cast<int>(Modality::Text)).nonzero().view({-1});
}

TokenLayout TokenLayout::select(const at::Tensor& keep) const {
  TokenLayout out;
  out.modality = modality.index_select(1, keep);
  out.media_index = media_index.index_select(1, keep);
  out.grid = grid.index_select(1, keep);
  out.positions = positions.index_select(2, keep);
  out.original_index = original_index.index_select(1, keep);
  return out;
}

}  // namespace glimpse::model
