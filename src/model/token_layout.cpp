#include "glimpse/model/token_layout.h"

#include <ATen/ATen.h>

#include <vector>

namespace glimpse::model {

at::Tensor TokenLayout::visual_indices(std::int64_t b) const {
  return modality[b].ne(static_cast<int>(Modality::Text)).nonzero().view({-1});
}

TokenLayout TokenLayout::select(const at::Tensor& keep) const {
  if (keep.dim() == 2) {
    const at::Tensor pad = keep.lt(0);
    const at::Tensor idx = keep.clamp_min(0);
    TokenLayout out;
    out.modality = modality.gather(1, idx).masked_fill(pad, static_cast<int>(Modality::Text));
    out.media_index = media_index.gather(1, idx).masked_fill(pad, -1);
    out.grid =
        grid.gather(1, idx.unsqueeze(-1).expand({-1, -1, 3})).masked_fill(pad.unsqueeze(-1), -1);
    out.positions = positions.gather(2, idx.unsqueeze(0).expand({positions.size(0), -1, -1}));
    out.original_index = original_index.gather(1, idx).masked_fill(pad, -1);
    return out;
  }
  TokenLayout out;
  out.modality = modality.index_select(1, keep);
  out.media_index = media_index.index_select(1, keep);
  out.grid = grid.index_select(1, keep);
  out.positions = positions.index_select(2, keep);
  out.original_index = original_index.index_select(1, keep);
  return out;
}

at::Tensor select_tokens(const at::Tensor& x, const at::Tensor& keep) {
  if (keep.dim() == 1) return x.index_select(1, keep);
  std::vector<std::int64_t> shape = x.sizes().vec();
  shape[1] = keep.size(1);
  at::Tensor idx = keep.clamp_min(0);
  for (std::int64_t d = 2; d < x.dim(); ++d) idx = idx.unsqueeze(-1);
  return x.gather(1, idx.expand(shape));
}

}  // namespace glimpse::model
