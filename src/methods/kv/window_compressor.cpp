#include "methods/kv/window_compressor.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::kv {

WindowOptions parse_window_options(const core::Config& params,
                                   const std::vector<std::string>& extra) {
  for (const auto& key : params.keys()) {
    const bool own = std::find(extra.begin(), extra.end(), key) != extra.end();
    if (key != "type" && key != "compression_ratio" && key != "budget" && key != "window" &&
        key != "kernel" && key != "pooling" && !own) {
      std::string expected = "compression_ratio or budget, window, kernel, pooling";
      for (const auto& e : extra) expected += ", " + e;
      params.fail(key, "unknown parameter (expected " + expected + ")");
    }
  }
  WindowOptions o;
  o.window = params.get_int("window", o.window);
  if (o.window < 1)
    params.fail("window", "expected at least 1 token, found " + std::to_string(o.window));
  o.kernel = params.get_int("kernel", o.kernel);
  if (o.kernel < 1 || o.kernel % 2 == 0) {
    params.fail("kernel", "expected an odd pooling kernel >= 1, found " + std::to_string(o.kernel));
  }
  const std::string pooling = params.get_string("pooling", "avgpool");
  if (pooling == "avgpool") {
    o.pooling = Pooling::Avg;
  } else if (pooling == "maxpool") {
    o.pooling = Pooling::Max;
  } else {
    params.fail("pooling", "expected avgpool or maxpool, found '" + pooling + "'");
  }
  return o;
}

at::Tensor pooled_window_scores(const at::Tensor& window_sum, std::int64_t kv_heads,
                                const WindowOptions& options) {
  const std::int64_t hq = window_sum.size(0), t = window_sum.size(1);
  const std::int64_t n = t - options.window;
  // GQA: the mean over each KV head's query heads (SparseMM gqa_func='mean', kvpress); the
  // official SnapKV targets multi-head models and has no grouping.
  const at::Tensor grouped =
      window_sum.narrow(1, 0, n).reshape({kv_heads, hq / kv_heads, n}).mean(1).unsqueeze(0);
  const std::int64_t k = options.kernel;
  const at::Tensor pooled = options.pooling == Pooling::Avg
                                ? at::avg_pool1d(grouped, {k}, {1}, {k / 2})
                                : at::max_pool1d(grouped, {k}, {1}, {k / 2});
  return pooled.squeeze(0);
}

std::vector<at::Tensor> select_heads(const at::Tensor& pooled,
                                     const std::vector<std::int64_t>& counts, std::int64_t length,
                                     std::int64_t pad, std::int64_t window) {
  const auto opts = at::TensorOptions().dtype(at::kLong);
  const std::int64_t candidates = length - window - pad;
  const at::Tensor recent = at::arange(length - window, length, opts);
  std::vector<at::Tensor> rows;
  for (std::int64_t h = 0; h < pooled.size(0); ++h) {
    const std::int64_t c = std::clamp<std::int64_t>(counts[h], 0, candidates);
    const at::Tensor top = prune::top_indices(pooled[h].narrow(0, pad, candidates), c) + pad;
    rows.push_back(at::cat({std::get<0>(at::sort(top)), recent}));
  }
  return rows;
}

WindowCompressor::WindowCompressor(KvBudget budget, WindowOptions options)
    : budget_(budget), options_(options) {}

std::optional<model::ProbeRequest> WindowCompressor::probe(const model::ProbeSite& site) {
  if (!site.prefill || site.stage != model::ProbeStage::Attention) return std::nullopt;
  model::ProbeRequest r;
  r.rows = model::RowSelection{options_.window, {}, false};
  r.over_rows = model::ProbeReduce::Sum;  // attn_weights[..., -window:, :].sum(dim=-2)
  return r;
}

void WindowCompressor::on_attention_probe(const model::AttentionProbe& probe) {
  if (!probe.prefill || probe.stage != model::ProbeStage::Attention) return;
  const auto l = static_cast<std::size_t>(probe.layer);
  if (window_sums_.size() <= l) window_sums_.resize(l + 1);
  window_sums_[l] = probe.probs.select(2, 0);  // [B, Hq, T]
}

void WindowCompressor::on_kv(model::KvSite& kv) {
  if (!kv.prefill || kv.state == nullptr) return;
  model::DecodeState& state = *kv.state;
  const model::DecoderShape& shape = *kv.shape;
  const std::int64_t layers = shape.num_layers, hkv = shape.num_kv_heads, w = options_.window;
  std::vector<at::Tensor> sums = std::move(window_sums_);
  window_sums_.clear();
  kept_.assign(static_cast<std::size_t>(layers), at::Tensor());
  applied_ = false;
  prompt_ = 0;
  for (std::int64_t l = 0; l < layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    if (li >= sums.size() || !sums[li].defined()) {
      throw Error(type() + ": no window probe of layer " + std::to_string(l) + " arrived");
    }
    const at::Tensor& mask = state.key_masks[li];
    const std::int64_t batch = mask.size(0), length = mask.size(1);
    if (sums[li].size(-1) != length) {
      throw Error(type() + ": layer " + std::to_string(l) + " caches " + std::to_string(length) +
                  " keys but its window probe saw " + std::to_string(sums[li].size(-1)));
    }
    const at::Tensor real = mask.ne(0).sum(1);
    std::vector<at::Tensor> rows;
    at::Tensor counts = at::empty({batch, hkv}, at::TensorOptions().dtype(at::kLong));
    bool compressed = false;
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::int64_t t = real[b].item<std::int64_t>(), pad = length - t;
      prompt_ = std::max(prompt_, t);
      const std::int64_t c = budget_.kept(t);
      if (c >= t || t <= w) {
        // The whole prompt fits: nothing to remove (SnapKVCluster: q_len < max_capacity_prompt).
        const at::Tensor all = at::arange(pad, length, at::TensorOptions().dtype(at::kLong));
        for (std::int64_t h = 0; h < hkv; ++h) rows.push_back(all);
        counts[b].fill_(t);
        continue;
      }
      if (c <= w) {
        throw InputError(type() + ": compression_ratio " + std::to_string(budget_.ratio()) +
                         " leaves " + std::to_string(c) + " entries of a " + std::to_string(t) +
                         "-token prompt, no more than the window of " + std::to_string(w) +
                         " (lower the ratio or the window)");
      }
      const at::Tensor pooled = pooled_window_scores(sums[li][b], hkv, options_);
      std::vector<std::int64_t> n = head_counts(l, layers, t, c - w, pooled);
      for (auto& x : n) x = std::clamp<std::int64_t>(x, 0, t - w);
      auto heads = select_heads(pooled, n, length, pad, w);
      for (std::int64_t h = 0; h < hkv; ++h) {
        counts[b][h] = heads[h].numel();
        compressed = compressed || heads[h].numel() < t;
        rows.push_back(std::move(heads[h]));
      }
    }
    kept_[li] = counts;
    if (!compressed) continue;  // the dense cache stays as it is
    state.keep_heads(l, prune::pack_keep(rows).view({batch, hkv, -1}));
    applied_ = true;
  }
}

void WindowCompressor::report(pipeline::Report& report) const {
  auto& e = report.add(type());
  if (budget_.is_ratio()) {
    e.numbers["compression_ratio"] = budget_.ratio();
  } else {
    e.numbers["budget"] = static_cast<double>(budget_.budget());
  }
  e.numbers["window"] = static_cast<double>(options_.window);
  e.numbers["kernel"] = static_cast<double>(options_.kernel);
  e.strings["pooling"] = options_.pooling == Pooling::Avg ? "avgpool" : "maxpool";
  e.numbers["applied"] = applied_ ? 1 : 0;
  e.numbers["prompt_tokens"] = static_cast<double>(prompt_);
  std::vector<std::int64_t> per_layer;
  for (const auto& k : kept_) per_layer.push_back(k.defined() ? k.sum().item<std::int64_t>() : 0);
  e.lists["kept_per_layer"] = per_layer;
  report_extra(e);
}

}  // namespace glimpse::methods::kv
