#pragma once

// StreamingLLM (Xiao et al., "Efficient Streaming Language Models with Attention Sinks"): the
// cache is held at a fixed size by keeping the first `sinks` tokens and the most recent ones,
// after the prefill and after every decode step, whatever their content. Kept keys keep their
// original rotary positions (kvpress StreamingLLMPress's default; the paper's re-rotation is not
// done). Official code: streaming-llm streaming_llm/kv_cache.py:StartRecentKVCache.

#include <memory>

#include "glimpse/pipeline/pipeline.h"
#include "methods/kv/budget.h"

namespace glimpse::methods::kv {

class StreamingLLM : public pipeline::Method {
 public:
  StreamingLLM(KvBudget budget, std::int64_t sinks);
  // {"type": "streaming_llm", "compression_ratio" | "budget", "sinks": 4}: the budget is the
  // size the cache is held at (sinks included); a ratio holds it at that fraction removed of the
  // tokens seen so far.
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);
  std::string type() const override { return "streaming_llm"; }
  void report(pipeline::Report& report) const override;
  void on_kv(model::KvSite& kv) override;

  // Of a head's real columns `valid` (increasing), the first `sinks` and the last size - sinks;
  // all of them when they fit.
  static at::Tensor keep_ends(const at::Tensor& valid, std::int64_t sinks, std::int64_t size);

 private:
  KvBudget budget_;
  std::int64_t sinks_;
  std::int64_t seen_ = 0;  // tokens passed since the prefill
  std::int64_t size_ = 0;  // the size the cache is held at after the last pass
  bool active_ = false;
  std::int64_t evictions_ = 0, evicted_ = 0;
};

}  // namespace glimpse::methods::kv
