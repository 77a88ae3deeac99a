#pragma once

// Helpers the token-reduction methods share: ranking with a defined tie rule, packing per-sequence
// keeps into the [B, S'] form of BlockPre::keep, and scaling the layer defaults that papers give
// for 32-layer LLaVA to the model at hand.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace glimpse::methods::prune {

// The indices of the k largest of `scores` (1-D), highest first; equal scores go to the lower
// index (torch.topk leaves ties unspecified; glimpse fixes them so that runs are reproducible).
at::Tensor top_indices(const at::Tensor& scores, std::int64_t k);

// Per-sequence kept rows (each increasing) as a keep: [S'] for one sequence, else [B, widest]
// left-padded with -1.
at::Tensor pack_keep(const std::vector<at::Tensor>& rows);

// round(layer * layers / 32) with Python's round (half to even): a layer index given for the
// 32-layer LLaMA of LLaVA-1.5 moved to a decoder of `layers` layers.
std::int64_t scale_layer(std::int64_t paper_layer, std::int64_t layers);

}  // namespace glimpse::methods::prune
