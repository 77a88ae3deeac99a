#pragma once

// AdaKV (Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation"): a
// layer's budget of H_kv x base keys is spread over its KV heads by a top-k of all heads' pooled
// window scores together; head g keeps round(won_g (1 - floor) + int(base floor)) (normalised
// scores by default). Official code as SparseMM vendors it from FFY0/AdaKV:
// sparsemm/sparsemm_utils.py:AdaKVCluster.update_kv (defaults from init_adakv).

#include <memory>

#include "methods/kv/window_compressor.h"

namespace glimpse::methods::kv {

class AdaKV : public WindowCompressor {
 public:
  AdaKV(KvBudget budget, WindowOptions options, double floor, bool normalize);
  // {"type": "adakv", "compression_ratio" | "budget", "window": 32, "kernel": 5,
  //  "pooling": "avgpool", "floor": 0.2, "normalize": true}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);
  std::string type() const override { return "adakv"; }

  // The per-head counts for pooled scores [H_kv, n] and a mean of `base` per head.
  static std::vector<std::int64_t> allocate(const at::Tensor& pooled, std::int64_t base,
                                            double floor, bool normalize);

 protected:
  std::vector<std::int64_t> head_counts(std::int64_t layer, std::int64_t layers,
                                        std::int64_t prompt, std::int64_t base,
                                        const at::Tensor& pooled) override;
  void report_extra(pipeline::ReportEntry& entry) const override;

 private:
  double floor_;
  bool normalize_;
};

}  // namespace glimpse::methods::kv
