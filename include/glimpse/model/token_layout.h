#pragma once

// The token layout carried through the forward pass (DESIGN.md section 3): per token of each
// sequence its modality, media index, merged-patch grid coordinates, rope position(s) and original
// index. Pruning selects rows of the hidden states and of the layout together, so positions stay
// the original ones and every surviving visual token can be drawn back onto its image grid.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace glimpse::model {

enum class Modality : std::int8_t { Text = 0, Image = 1, Video = 2 };

struct TokenLayout {
  at::Tensor modality;        // [B, S] int8 (Modality values)
  at::Tensor media_index;     // [B, S] int64: image or video number within its kind, -1 for text
  at::Tensor grid;            // [B, S, 3] int64: (t, h, w) in merged-patch units, -1 for text
  at::Tensor positions;       // [P, B, S] int64: rope positions (P = 3 for M-RoPE, 1 for 1-D)
  at::Tensor original_index;  // [B, S] int64: index in the prompt as given

  bool defined() const { return modality.defined(); }
  std::int64_t batch() const { return modality.size(0); }
  std::int64_t length() const { return modality.size(1); }

  // Indices (int64, increasing) of the visual tokens of row `b`.
  at::Tensor visual_indices(std::int64_t b) const;
  // The rows `keep` of every sequence: [S'] increasing indices (the same for every sequence), or
  // [B, S'] per sequence, left-padded with -1 where a sequence keeps fewer (a padded slot is text
  // with media -1, grid -1 and original index -1).
  TokenLayout select(const at::Tensor& keep) const;
};

// The tokens `keep` (as TokenLayout::select takes it) along dimension 1 of x [B, S, ...]. A
// padded slot (-1) holds a copy of the sequence's first token; callers mask it.
at::Tensor select_tokens(const at::Tensor& x, const at::Tensor& keep);

}  // namespace glimpse::model
