#pragma once

// PyramidKV (Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
// Funneling"): SnapKV's selection with a per-layer count that falls linearly with depth, from
// max = 2 base - base / beta at layer 0 to min = base / beta at the last layer (capped at the
// prompt), so that the total stays SnapKV's. As the official code, prompts shorter than
// 2 (C - window) get SnapKV's uniform count.
// Official code: PyramidKV pyramidkv/pyramidkv_utils.py:PyramidKVCluster.update_kv.

#include <memory>

#include "methods/kv/window_compressor.h"

namespace glimpse::methods::kv {

class PyramidKV : public WindowCompressor {
 public:
  PyramidKV(KvBudget budget, WindowOptions options, std::int64_t beta);
  // {"type": "pyramidkv", "compression_ratio" | "budget", "window": 32, "kernel": 5,
  //  "pooling": "avgpool", "beta": 20}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);
  std::string type() const override { return "pyramidkv"; }

  // Keys kept outside the window at `layer` of `layers` for a prompt of `prompt` tokens and a
  // budget of `capacity` entries (window included), as PyramidKVCluster.update_kv computes it.
  static std::int64_t layer_count(std::int64_t layer, std::int64_t layers, std::int64_t prompt,
                                  std::int64_t capacity, std::int64_t window, std::int64_t beta);

 protected:
  std::vector<std::int64_t> head_counts(std::int64_t layer, std::int64_t layers,
                                        std::int64_t prompt, std::int64_t base,
                                        const at::Tensor& pooled) override;
  void report_extra(pipeline::ReportEntry& entry) const override;

 private:
  std::int64_t beta_;
};

}  // namespace glimpse::methods::kv
