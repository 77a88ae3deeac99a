// BenchOptions::kv_decode: a long context costs one prefill; the dense and the compressed cache
// are forks of it (issue 17).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "bench/forwarding_hooks.h"
#include "bench/internal.h"
#include "glimpse/core/error.h"
#include "glimpse/pipeline/method_context.h"
#include "layers/cached_attention.h"
#include "layers/modules.h"

namespace glimpse::bench {
namespace {

// Passes every site on but holds back the prefill's kv.after_prefill, so that the state can be
// forked first (the decoder completes the state only after the pass) and the methods compress
// one fork.
class HoldKv : public ForwardingHooks {
 public:
  using ForwardingHooks::ForwardingHooks;
  void on_kv(model::KvSite& kv) override {
    if (kv.prefill) {
      shape_ = kv.shape;
      return;
    }
    ForwardingHooks::on_kv(kv);
  }
  void release(model::DecodeState& state) {
    model::KvSite site{true, &state, shape_, nullptr};
    ForwardingHooks::on_kv(site);
  }

 private:
  const model::DecoderShape* shape_ = nullptr;
};

}  // namespace

KvDecodeTimings time_kv_decode(model::Model& m, const model::ForwardInputs& inputs,
                               const BenchOptions& o, std::int64_t weight_bytes) {
  if (o.pipeline == nullptr) throw InputError("--kv-decode: needs --pipeline (the KV methods)");
  if (o.new_tokens < 1) throw InputError("--kv-decode: needs --new-tokens >= 1");
  KvDecodeTimings t;
  t.context = inputs.input_ids.size(1);
  o.pipeline->bind(pipeline::MethodContext(m));
  HoldKv hold(o.pipeline);
  model::ForwardOptions fo;
  fo.last_logits_only = true;
  fo.hooks = &hold;
  model::DecodeState root = m.new_state(1);
  auto t0 = Clock::now();
  const at::Tensor logits = m.forward_cached(inputs, fo, root).logits;
  t.prefill_ms = ms_since(t0);
  t.rss_dense_bytes = current_rss_bytes();
  std::vector<model::DecodeState> forks = root.fork(2);
  model::DecodeState& dense = forks[0];
  model::DecodeState& compressed = forks[1];
  hold.release(compressed);
  t.report_json = o.pipeline->report().to_json();
  t.kv_report = compressed.kv_report();
  const auto kv = nlohmann::json::parse(t.kv_report);
  t.bytes_full = kv.at("bytes_full").get<std::int64_t>();
  t.bytes_held = kv.at("bytes_held").get<std::int64_t>();
  t.bytes_ratio = static_cast<double>(t.bytes_held) / std::max<std::int64_t>(t.bytes_full, 1);
  t.ideal_speedup = static_cast<double>(weight_bytes + t.bytes_full) /
                    static_cast<double>(weight_bytes + t.bytes_held);

  const at::Tensor first = logits.select(1, -1).argmax(-1).view({1, 1});
  // `steps` greedy tokens on a fresh fork of `from`, with `hooks` (decode-time methods).
  auto decode = [&](model::DecodeState& from, model::ForwardHooks* hooks) {
    model::DecodeState s = std::move(from.fork(1)[0]);
    model::ForwardOptions step_options;
    step_options.last_logits_only = true;
    step_options.hooks = hooks;
    at::Tensor next = first;
    const auto s0 = Clock::now();
    for (std::int64_t i = 0; i < o.new_tokens; ++i) {
      model::ForwardInputs step;
      step.input_ids = next;
      next = m.forward_cached(step, step_options, s).logits.select(1, -1).argmax(-1).view({1, 1});
    }
    return ms_since(s0) / static_cast<double>(o.new_tokens);
  };
  // One token's decode attention over every layer: dense attention over the full cache (the
  // plain decode path) against the path the compressed cache takes.
  const model::DecoderShape& shape = m.decoder_shape();
  const double scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  const at::Tensor q = at::randn({1, shape.num_heads, 1, shape.head_dim}).to(m.dtype());
  std::vector<std::pair<at::Tensor, at::Tensor>> full;
  for (std::int64_t l = 0; l < shape.num_layers; ++l) full.push_back(dense.cache->get(l));
  auto attention_ms = [&](bool method) {
    constexpr int kReps = 5;
    const auto a0 = Clock::now();
    for (int r = 0; r < kReps; ++r) {
      for (std::int64_t l = 0; l < shape.num_layers; ++l) {
        const auto li = static_cast<std::size_t>(l);
        if (method) {
          (void)layers::cached_attention(q, compressed.cache->view(l), scale, {}, nullptr, l);
        } else {
          (void)layers::attention(q, full[li].first, full[li].second, scale, {}, true);
        }
      }
    }
    return ms_since(a0) / kReps;
  };
  for (int i = 0; i < o.warmup + o.repeat; ++i) {
    const bool record = i >= o.warmup;
    const double d = decode(dense, nullptr), c = decode(compressed, o.pipeline);
    const double da = attention_ms(false), ca = attention_ms(true);
    if (!record) continue;
    t.dense_ms_runs.push_back(d);
    t.method_ms_runs.push_back(c);
    t.dense_attention_ms_runs.push_back(da);
    t.method_attention_ms_runs.push_back(ca);
  }
  t.dense_ms_per_token = median(t.dense_ms_runs);
  t.method_ms_per_token = median(t.method_ms_runs);
  t.dense_tokens_per_s = 1e3 / std::max(t.dense_ms_per_token, 1e-9);
  t.method_tokens_per_s = 1e3 / std::max(t.method_ms_per_token, 1e-9);
  t.speedup = t.method_tokens_per_s / std::max(t.dense_tokens_per_s, 1e-9);
  t.dense_attention_ms = median(t.dense_attention_ms_runs);
  t.method_attention_ms = median(t.method_attention_ms_runs);
  t.attention_ratio = t.method_attention_ms / std::max(t.dense_attention_ms, 1e-9);
  // Only the compressed state left: the dense prefix goes with its last reader.
  full.clear();
  dense = model::DecodeState();
  root = model::DecodeState();
  t.rss_compressed_bytes = current_rss_bytes();
  return t;
}

}  // namespace glimpse::bench
