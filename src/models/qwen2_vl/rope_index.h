#pragma once

// M-RoPE positions (transformers 4.50 modeling_qwen2_vl.py / modeling_qwen2_5_vl.py:
// get_rope_index) and the multimodal rotary embedding (apply_multimodal_rotary_pos_emb).

#include <ATen/ATen.h>

#include "glimpse/model/token_layout.h"
#include "models/qwen2_vl/config.h"

namespace glimpse::models::qwen2_vl {

struct RopeIndex {
  at::Tensor position_ids;    // [3, B, S] int64; padded slots hold 1, as in the reference
  at::Tensor rope_deltas;     // [B, 1] int64: max position + 1 - S
  model::TokenLayout layout;  // modality, media index and grid of every token
};

// Inputs are CPU tensors checked by the caller: input_ids [B, S], attention_mask [B, S] or
// undefined, grids [n, 3] or undefined, second_per_grid_ts [n_videos] or undefined.
RopeIndex get_rope_index(const Qwen2VLConfig& config, const at::Tensor& input_ids,
                         const at::Tensor& image_grid_thw, const at::Tensor& video_grid_thw,
                         const at::Tensor& second_per_grid_ts, const at::Tensor& attention_mask);

// cos and sin [B, S, head_dim] for position_ids [3, B, S]: frequencies in fp32, each frequency
// band taken from the stream (t, h, w) that mrope_section assigns to it, then cast to `dtype`.
std::pair<at::Tensor, at::Tensor> mrope_cos_sin(const Qwen2VLConfig& config,
                                                const at::Tensor& position_ids,
                                                c10::ScalarType dtype);

}  // namespace glimpse::models::qwen2_vl
