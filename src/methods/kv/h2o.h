#pragma once

// H2O (Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large
// Language Models"): every pass adds the attention each cached key receives (summed over the
// pass's query rows, averaged over each KV head's query heads) to its accumulated score; once a
// head holds more than the budget, it keeps its recent window and the keys of highest accumulated
// score ("heavy hitters"), its own set per head. Scores follow their keys through evictions.
// Official code: H2O h2o_hf/utils_real_drop/modify_llama.py:H2OKVCache_LayerWise (__call__,
// _update_hh_score).

#include <memory>

#include "glimpse/pipeline/pipeline.h"
#include "methods/kv/budget.h"

namespace glimpse::methods::kv {

class H2O : public pipeline::Method {
 public:
  H2O(KvBudget budget, double recent_ratio);
  // {"type": "h2o", "compression_ratio" | "budget", "recent_ratio": 0.5}: the cache is held at
  // the budget (a ratio: that fraction removed of the tokens seen), `recent_ratio` of it the
  // recent window (the paper's equal heavy and recent shares), the rest heavy hitters.
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);
  std::string type() const override { return "h2o"; }
  void report(pipeline::Report& report) const override;
  std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;
  void on_kv(model::KvSite& kv) override;

  // Per layer, the accumulated score of each entry [B, H_kv, columns] (0 in holes) after the last
  // pass, in the cache's column order.
  const std::vector<at::Tensor>& scores() const { return scores_; }
  // Of a head's real columns `valid` with accumulated `score` (over the same columns), the top
  // `heavy` of all but the last `recent` (ties to the lower column) and the last `recent`,
  // increasing; all of them when they fit.
  static at::Tensor keep_head(const at::Tensor& valid, const at::Tensor& score, std::int64_t heavy,
                              std::int64_t recent);

 private:
  KvBudget budget_;
  double recent_ratio_;
  std::vector<at::Tensor> pending_;  // per layer, this pass's attention [B, H_kv, columns]
  std::vector<at::Tensor> scores_;
  std::int64_t seen_ = 0, size_ = 0, evictions_ = 0;
  bool active_ = false;
};

}  // namespace glimpse::methods::kv
