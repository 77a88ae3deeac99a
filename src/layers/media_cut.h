#pragma once

// Visual tokens dropped before the decoder (the keeps of vision.features and vision.out): the
// placeholder tokens leave the prompt together with their embeddings, mask and layout rows, and
// the kept ones keep their positions or are compacted (model::PositionPolicy).

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "glimpse/model/hooks.h"

namespace glimpse::layers {

struct PromptCut {
  at::Tensor drop;  // [B, S] bool: placeholder tokens to remove; undefined: none
  model::PositionPolicy positions = model::PositionPolicy::Keep;
  bool any() const { return drop.defined(); }
};

// The rows of `embeds` [total, H] that `keep` (checked: increasing indices into `total`) names:
// `embeds` itself when it already holds only those. Throws InputError naming `what` otherwise.
at::Tensor kept_rows(const at::Tensor& embeds, const at::Tensor& keep, std::int64_t total,
                     const std::string& what);

// One keep over the tokens of a kind from per-medium keeps (`tokens` per medium); undefined when
// no medium has one.
at::Tensor concat_keeps(const std::vector<at::Tensor>& keeps,
                        const std::vector<std::int64_t>& tokens);

// Marks in `cut` the placeholder tokens `token` of input_ids [B, S] whose rank among them
// (row-major: the order of the embeds) is not in `keep`; nothing when `keep` is undefined.
void drop_media_rows(const at::Tensor& input_ids, std::int64_t token, const at::Tensor& keep,
                     PromptCut& cut);

// The positions of input_ids that take the embeds of `token` after the cut.
at::Tensor scatter_mask(const at::Tensor& input_ids, std::int64_t token, const PromptCut& cut);

// Removes the cut's tokens from x [B, S, H], attention_mask [B, S] and layout, as a keep at
// blocks.0.pre would (sequences that keep fewer are left-padded), compacting positions when the
// cut says so. Returns the real tokens removed per sequence [B].
at::Tensor apply_cut(const PromptCut& cut, at::Tensor& x, at::Tensor& attention_mask,
                     model::TokenLayout& layout);

}  // namespace glimpse::layers
