#pragma once

// Helpers shared by the subcommands that run models.

#include <ATen/core/Tensor.h>

#include <string>

#include "glimpse/model/model.h"

namespace glimpse::cli {

// "f32" | "bf16" -> the compute dtype; InputError naming --dtype otherwise.
c10::ScalarType parse_dtype(const std::string& name);

// Reads forward arguments named as the reference's (input_ids, attention_mask, pixel_values,
// image_grid_thw, pixel_values_videos, video_grid_thw, second_per_grid_ts) from a safetensors
// file; input_ids is required, the rest optional. Other tensors are ignored with a warning.
model::ForwardInputs read_forward_inputs(const std::string& path);

// Writes `text` to `path`; InputError naming the file when it cannot.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace glimpse::cli
