#pragma once

// SnapKV (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation"): every KV
// head of every layer keeps the same number of prompt keys, C - window of the best-scored plus the
// window. Official code: SnapKV snapkv/monkeypatch/snapkv_utils.py:SnapKVCluster.update_kv.

#include <memory>

#include "methods/kv/window_compressor.h"

namespace glimpse::methods::kv {

class SnapKV : public WindowCompressor {
 public:
  using WindowCompressor::WindowCompressor;
  // {"type": "snapkv", "compression_ratio" | "budget", "window": 32, "kernel": 5,
  //  "pooling": "avgpool"}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);
  std::string type() const override { return "snapkv"; }

 protected:
  std::vector<std::int64_t> head_counts(std::int64_t layer, std::int64_t layers,
                                        std::int64_t prompt, std::int64_t base,
                                        const at::Tensor& pooled) override;
};

}  // namespace glimpse::methods::kv
