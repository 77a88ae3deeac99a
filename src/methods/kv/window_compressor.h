#pragma once

// The SnapKV family (issue 17; spec pruning_kv.md 1.1, 1.2, 1.5, 1.6): once after the prefill,
// each layer's prompt keys are scored by the attention of the last `window` prompt tokens (summed
// over the window rows, averaged over the query heads of each KV head, smoothed by a 1-D pool),
// and each KV head keeps its top keys plus the window in a ragged cache. Methods differ only in
// how many keys each head keeps (head_counts): SnapKV the same everywhere, PyramidKV by layer,
// AdaKV by head within a layer, SparseMM by an offline head score.
// Official code: SnapKV snapkv/monkeypatch/snapkv_utils.py:SnapKVCluster.update_kv.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "glimpse/pipeline/pipeline.h"
#include "methods/kv/budget.h"

namespace glimpse::methods::kv {

enum class Pooling : std::int8_t { Avg, Max };

struct WindowOptions {
  std::int64_t window = 32;  // init_snapkv's window_sizes (the class default is 64)
  std::int64_t kernel = 5;
  Pooling pooling = Pooling::Avg;
};

// The parameters every method of the family reads: window, kernel, pooling. `extra` lists the
// method's own keys, for the unknown-key check.
WindowOptions parse_window_options(const core::Config& params,
                                   const std::vector<std::string>& extra);

// The pooled window score of one sequence's prompt: `window_sum` [Hq, T] (attention summed over
// the last `window` query rows), averaged over each KV head's query heads and pooled over the
// first T - window keys: [H_kv, T - window] (avg_pool1d / max_pool1d, stride 1, padding k / 2,
// zeros counted as torch's avg_pool1d does).
at::Tensor pooled_window_scores(const at::Tensor& window_sum, std::int64_t kv_heads,
                                const WindowOptions& options);

// Each head's kept columns of a prompt of `length` columns whose first `pad` are padding: the
// top counts[h] of its pooled scores over the real candidates [pad, length - window) (ties to the
// lower column) plus the window, increasing: [H_kv] rows.
std::vector<at::Tensor> select_heads(const at::Tensor& pooled,
                                     const std::vector<std::int64_t>& counts, std::int64_t length,
                                     std::int64_t pad, std::int64_t window);

class WindowCompressor : public pipeline::Method {
 public:
  WindowCompressor(KvBudget budget, WindowOptions options);

  std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;
  void on_kv(model::KvSite& kv) override;
  void report(pipeline::Report& report) const override;

  // Per layer, the entries each (sequence, KV head) kept at the last prefill: [B, H_kv].
  const std::vector<at::Tensor>& kept() const { return kept_; }

 protected:
  // How many of the `candidates` = T - window prompt keys (window excluded) each KV head of
  // `layer` keeps, for a sequence of `prompt` real tokens that keeps `base` = C - window per head
  // on average (C from the budget) and scores `pooled` [H_kv, candidates].
  virtual std::vector<std::int64_t> head_counts(std::int64_t layer, std::int64_t layers,
                                                std::int64_t prompt, std::int64_t base,
                                                const at::Tensor& pooled) = 0;
  // Adds the method's own numbers to its report entry.
  virtual void report_extra(pipeline::ReportEntry& entry) const {}

  const KvBudget& budget() const { return budget_; }
  const WindowOptions& options() const { return options_; }

 private:
  KvBudget budget_;
  WindowOptions options_;
  std::vector<at::Tensor> window_sums_;  // per layer [B, Hq, T] of the current prefill
  std::vector<at::Tensor> kept_;
  std::int64_t prompt_ = 0;
  bool applied_ = false;
};

}  // namespace glimpse::methods::kv
