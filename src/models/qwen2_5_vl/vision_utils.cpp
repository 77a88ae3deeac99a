#include "models/qwen2_5_vl/vision_utils.h"

namespace glimpse::models::qwen2_5_vl {

WindowIndex get_window_index(const std::vector<std::array<std::int64_t, 3>>& grids,
                             std::int64_t spatial_merge_size, std::int64_t window) {
  WindowIndex out;
  out.cu_window_seqlens.push_back(0);
  const std::int64_t unit = spatial_merge_size * spatial_merge_size;
  std::int64_t offset = 0;
  for (const auto& [t, gh, gw] : grids) {
    const std::int64_t h = gh / spatial_merge_size, w = gw / spatial_merge_size;
    // The reference pads by `window - h % window` (a whole window when divisible) and drops the
    // padding again; only non-empty windows matter, and they come out the same.
    const std::int64_t nh = (h + window - 1) / window, nw = (w + window - 1) / window;
    for (std::int64_t f = 0; f < t; ++f) {
      for (std::int64_t wy = 0; wy < nh; ++wy) {
        for (std::int64_t wx = 0; wx < nw; ++wx) {
          std::int64_t count = 0;
          for (std::int64_t y = wy * window; y < std::min(h, (wy + 1) * window); ++y) {
            for (std::int64_t x = wx * window; x < std::min(w, (wx + 1) * window); ++x) {
              out.window_index.push_back(offset + (f * h + y) * w + x);
              ++count;
            }
          }
          if (count > 0)
            out.cu_window_seqlens.push_back(out.cu_window_seqlens.back() + count * unit);
        }
      }
    }
    offset += t * h * w;
  }
  return out;
}

}  // namespace glimpse::models::qwen2_5_vl
