#include "methods/kv/h2o.h"

#include <ATen/ATen.h>

#include <cmath>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"
#include "methods/kv/columns.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::kv {

H2O::H2O(KvBudget budget, double recent_ratio) : budget_(budget), recent_ratio_(recent_ratio) {}

std::unique_ptr<pipeline::Method> H2O::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "compression_ratio" && key != "budget" && key != "recent_ratio") {
      params.fail(key, "unknown parameter (expected compression_ratio or budget, recent_ratio)");
    }
  }
  const double recent = params.get_float("recent_ratio", 0.5);
  if (!(recent >= 0.0 && recent <= 1.0)) {
    params.fail("recent_ratio",
                "expected the recent window's share of the budget in [0, 1], found " +
                    std::to_string(recent));
  }
  return std::make_unique<H2O>(KvBudget::parse(params, 0), recent);
}

std::optional<model::ProbeRequest> H2O::probe(const model::ProbeSite& site) {
  if (site.stage != model::ProbeStage::Attention || (!site.prefill && !active_))
    return std::nullopt;
  model::ProbeRequest r;
  r.rows = model::RowSelection::every_row();
  r.over_rows = model::ProbeReduce::Sum;  // attn_score_cache.sum(1): over the query rows
  return r;
}

void H2O::on_attention_probe(const model::AttentionProbe& probe) {
  if (probe.stage != model::ProbeStage::Attention) return;
  const auto l = static_cast<std::size_t>(probe.layer);
  if (pending_.size() <= l) pending_.resize(l + 1);
  pending_[l] = probe.probs.select(2, 0);  // [B, Hq, columns]; grouped in on_kv
}

at::Tensor H2O::keep_head(const at::Tensor& valid, const at::Tensor& score, std::int64_t heavy,
                          std::int64_t recent) {
  const std::int64_t n = valid.numel();
  if (n <= heavy + recent) return valid;
  const std::int64_t older = n - recent;
  const at::Tensor top = prune::top_indices(score.narrow(0, 0, older), heavy);
  return at::cat(
      {valid.index_select(0, std::get<0>(at::sort(top))), valid.narrow(0, older, recent)});
}

void H2O::on_kv(model::KvSite& kv) {
  if (kv.state == nullptr) return;
  model::DecodeState& state = *kv.state;
  if (kv.prefill) {
    seen_ = tokens_seen(kv);
    scores_.clear();
    evictions_ = 0;
    active_ = true;
  } else if (active_) {
    seen_ = tokens_seen(kv);
  }
  if (!active_) return;
  size_ = budget_.kept(seen_);
  if (size_ < 1) {
    throw InputError("h2o: compression_ratio " + std::to_string(budget_.ratio()) +
                     " leaves no entry of " + std::to_string(seen_) + " tokens");
  }
  const auto recent =
      static_cast<std::int64_t>(std::floor(static_cast<double>(size_) * recent_ratio_));
  const std::int64_t heavy = size_ - recent;
  const std::int64_t layers = static_cast<std::int64_t>(state.key_masks.size());
  const std::int64_t hkv = kv.shape->num_kv_heads;
  std::vector<at::Tensor> pending = std::move(pending_);
  pending_.clear();
  scores_.resize(static_cast<std::size_t>(layers));
  for (std::int64_t l = 0; l < layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    const at::Tensor& mask = state.key_masks[li];
    if (!mask.defined()) continue;
    if (li >= pending.size() || !pending[li].defined()) {
      throw Error("h2o: no attention probe of layer " + std::to_string(l) + " arrived");
    }
    // _update_hh_score: the new keys join with 0, then every key gains this pass's attention
    // (GQA: the mean over the KV head's query heads).
    const at::Tensor add = pending[li];
    const std::int64_t batch = add.size(0), cols = add.size(2);
    const at::Tensor grouped = add.view({batch, hkv, add.size(1) / hkv, cols}).mean(2);
    at::Tensor& acc = scores_[li];
    if (!acc.defined()) {
      acc = grouped.clone();
    } else {
      acc = at::constant_pad_nd(acc, {0, cols - acc.size(2)}, 0) + grouped;
    }
    if (state.kv_lengths(l).max().item<std::int64_t>() <= size_) continue;
    const auto ragged = state.cache->view(l).ragged;
    std::vector<at::Tensor> rows, kept_scores;
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t h = 0; h < hkv; ++h) {
        const at::Tensor valid = real_columns(mask[b], ragged.get(), b, h);
        const at::Tensor keep = keep_head(valid, acc[b][h].index_select(0, valid), heavy, recent);
        rows.push_back(keep);
        kept_scores.push_back(acc[b][h].index_select(0, keep));
      }
    }
    ++evictions_;
    state.keep_heads(l, prune::pack_keep(rows).view({batch, hkv, -1}));
    // The scores follow their keys: head (b, h)'s column j is now its j-th kept entry.
    const std::int64_t longest = state.cache->length(l);
    acc = at::zeros({batch, hkv, longest}, acc.options());
    for (std::int64_t i = 0; i < batch * hkv; ++i) {
      const at::Tensor& s = kept_scores[static_cast<std::size_t>(i)];
      acc[i / hkv][i % hkv].narrow(0, 0, s.numel()).copy_(s);
    }
  }
}

void H2O::report(pipeline::Report& report) const {
  auto& e = report.add("h2o");
  if (budget_.is_ratio()) {
    e.numbers["compression_ratio"] = budget_.ratio();
  } else {
    e.numbers["budget"] = static_cast<double>(budget_.budget());
  }
  e.numbers["recent_ratio"] = recent_ratio_;
  e.numbers["cache_size"] = static_cast<double>(size_);
  e.numbers["layer_evictions"] = static_cast<double>(evictions_);
}

}  // namespace glimpse::methods::kv
