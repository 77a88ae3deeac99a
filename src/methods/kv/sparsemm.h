#pragma once

// SparseMM (Wang et al., "SparseMM: Head Sparsity Emerges from Visual Concept Responses in
// MLLMs"): each KV head gets a budget from an offline visual-head score (the file `glimpse
// visual-heads` writes, {"layer-head": [per-sample scores]} over query heads): every head is
// guaranteed m = int(base ratio) and the rest, (base - m) L H_kv, is shared out in proportion to
// the normalised scores summed over each KV head's query heads; selection within a head is
// SnapKV's. A score file of zeros (usual with random weights) gives every head `base`.
// Official code: SparseMM sparsemm/sparsemm_utils.py:SparseMM.__init__ and SparseMM.update_kv.

#include <map>
#include <memory>
#include <utility>

#include "methods/kv/window_compressor.h"

namespace glimpse::methods::kv {

class SparseMM : public WindowCompressor {
 public:
  // scores: [layers, query heads] mean score per head (any non-negative values).
  SparseMM(KvBudget budget, WindowOptions options, at::Tensor scores, double ratio,
           std::string source);
  // {"type": "sparsemm", "compression_ratio" | "budget", "scores": FILE, "ratio": 0.1,
  //  "window": 32, "kernel": 5, "pooling": "avgpool"}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);
  std::string type() const override { return "sparsemm"; }
  void bind(const pipeline::MethodContext& context) override;

  // Reads a score file: {"l-h": [scores...] or score} for every layer l and query head h of the
  // file; the mean per head, [layers, heads]. Throws FormatError naming the file and key.
  static at::Tensor read_scores(const std::string& path);
  // C[l, g] for a per-head mean budget `base` (window excluded): [layers, kv_heads] int64.
  static at::Tensor allocate(const at::Tensor& scores, std::int64_t kv_heads, std::int64_t base,
                             double ratio);

 protected:
  std::vector<std::int64_t> head_counts(std::int64_t layer, std::int64_t layers,
                                        std::int64_t prompt, std::int64_t base,
                                        const at::Tensor& pooled) override;
  void report_extra(pipeline::ReportEntry& entry) const override;

 private:
  void check_model(std::int64_t layers, std::int64_t heads, std::int64_t kv_heads) const;
  at::Tensor scores_;
  double ratio_;
  std::string source_;
  std::map<std::int64_t, at::Tensor> tables_;  // base -> C
};

}  // namespace glimpse::methods::kv
