#include "methods/kv/streaming_llm.h"

#include <ATen/ATen.h>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"
#include "methods/kv/columns.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::kv {

StreamingLLM::StreamingLLM(KvBudget budget, std::int64_t sinks) : budget_(budget), sinks_(sinks) {}

std::unique_ptr<pipeline::Method> StreamingLLM::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "compression_ratio" && key != "budget" && key != "sinks") {
      params.fail(key, "unknown parameter (expected compression_ratio or budget, sinks)");
    }
  }
  const std::int64_t sinks = params.get_int("sinks", 4);  // start_size
  if (sinks < 0) params.fail("sinks", "expected >= 0 sink tokens, found " + std::to_string(sinks));
  return std::make_unique<StreamingLLM>(KvBudget::parse(params, sinks), sinks);
}

at::Tensor StreamingLLM::keep_ends(const at::Tensor& valid, std::int64_t sinks, std::int64_t size) {
  const std::int64_t n = valid.numel();
  if (n <= size) return valid;
  return at::cat({valid.narrow(0, 0, sinks), valid.narrow(0, n - (size - sinks), size - sinks)});
}

void StreamingLLM::on_kv(model::KvSite& kv) {
  if (kv.state == nullptr) return;
  model::DecodeState& state = *kv.state;
  if (kv.prefill) {
    seen_ = tokens_seen(kv);
    evictions_ = evicted_ = 0;
    active_ = true;
  } else if (active_) {
    seen_ = tokens_seen(kv);
  }
  if (!active_) return;  // a pass before any prefill this method saw
  // A budget is the size itself; a ratio removes that fraction of every token seen so far (so
  // that 0 keeps everything).
  size_ = budget_.kept(seen_);
  if (size_ <= sinks_) {
    throw InputError("streaming_llm: compression_ratio " + std::to_string(budget_.ratio()) +
                     " holds the cache at " + std::to_string(size_) + " entries of " +
                     std::to_string(seen_) + " tokens, no more than the " + std::to_string(sinks_) +
                     " sinks");
  }
  for (std::int64_t l = 0; l < static_cast<std::int64_t>(state.key_masks.size()); ++l) {
    const at::Tensor& mask = state.key_masks[l];
    if (!mask.defined()) continue;
    // StartRecentKVCache: evict once seq_len > start + recent.
    if (state.kv_lengths(l).max().item<std::int64_t>() <= size_) continue;
    const std::int64_t batch = mask.size(0), heads = state.cache->head_lengths(l).size(1);
    const auto ragged = state.cache->view(l).ragged;
    // The real columns of each sequence and head, in order: not padding, not a hole of a ragged
    // part (a head that holds fewer entries than the longest).
    std::vector<at::Tensor> rows;
    bool same = ragged == nullptr;
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t h = 0; h < heads; ++h) {
        const at::Tensor valid = real_columns(mask[b], ragged.get(), b, h);
        rows.push_back(keep_ends(valid, sinks_, size_));
        evicted_ += valid.numel() - rows.back().numel();
        same = same && rows.back().equal(rows.front());
      }
    }
    ++evictions_;
    if (same) {
      state.keep_keys(l, rows.front());  // one index list for all: the dense cache stays dense
    } else {
      state.keep_heads(l, prune::pack_keep(rows).view({batch, heads, -1}));
    }
  }
}

void StreamingLLM::report(pipeline::Report& report) const {
  auto& e = report.add("streaming_llm");
  if (budget_.is_ratio()) {
    e.numbers["compression_ratio"] = budget_.ratio();
  } else {
    e.numbers["budget"] = static_cast<double>(budget_.budget());
  }
  e.numbers["sinks"] = static_cast<double>(sinks_);
  e.numbers["cache_size"] = static_cast<double>(size_);
  e.numbers["layer_evictions"] = static_cast<double>(evictions_);
  e.numbers["evicted_entries"] = static_cast<double>(evicted_);
}

}  // namespace glimpse::methods::kv
