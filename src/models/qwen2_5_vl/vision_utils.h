#pragma once

// Window attention bookkeeping of the Qwen2.5-VL vision tower (transformers
// modeling_qwen2_5_vl.py: Qwen2_5_VisionTransformerPretrainedModel.get_window_index).

#include <array>
#include <cstdint>
#include <vector>

namespace glimpse::models::qwen2_5_vl {

struct WindowIndex {
  // Merged-token order inside the tower: windows in raster order, raster order inside a window.
  std::vector<std::int64_t> window_index;
  // Patch offsets of window boundaries, starting at 0, empty windows removed
  // (the reference's unique_consecutive).
  std::vector<std::int64_t> cu_window_seqlens;
};

// `window` is window_size / spatial_merge_size / patch_size merged tokens per side.
WindowIndex get_window_index(const std::vector<std::array<std::int64_t, 3>>& grids,
                             std::int64_t spatial_merge_size, std::int64_t window);

}  // namespace glimpse::models::qwen2_5_vl
