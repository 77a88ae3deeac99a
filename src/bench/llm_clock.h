#pragma once

// Times the language-model part of a whole prefill: from the moment vision.out hands the visual
// features to the LLM (after any vision-side method such as VisionZip has reduced them) to the
// end of the pass. It wraps the pipeline under test (or nothing, for the plain run) and forwards
// every site to it, so that both runs are measured the same way.

#include <chrono>

#include "glimpse/model/hooks.h"

namespace glimpse::bench {

class LlmClock : public model::ForwardHooks {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LlmClock(model::ForwardHooks* inner) : inner_(inner) {}

  // Started at vision.out; a pass without one (text only) counts from construction.
  Clock::time_point start() const { return start_; }

  bool active() const override { return true; }
  std::vector<model::ProbeRequest> probes(const model::ProbeSite& site) override {
    return inner_ ? inner_->probes(site) : std::vector<model::ProbeRequest>{};
  }
  std::vector<model::VisionProbeRequest> vision_probes(std::int64_t layer) override {
    return inner_ ? inner_->vision_probes(layer) : std::vector<model::VisionProbeRequest>{};
  }
  void on_vision_attention_probe(const model::VisionAttentionProbe& p) override {
    if (inner_) inner_->on_vision_attention_probe(p);
  }
  void on_vision_block(model::VisionBlock& b) override {
    if (inner_) inner_->on_vision_block(b);
  }
  void on_vision_features(model::VisionFeatures& f) override {
    if (inner_) inner_->on_vision_features(f);
  }
  void on_vision_out(model::VisionOut& v) override {
    if (inner_) inner_->on_vision_out(v);
    start_ = Clock::now();
  }
  void on_block_pre(model::BlockPre& b) override {
    if (inner_) inner_->on_block_pre(b);
  }
  void on_attention(model::AttentionSite& s) override {
    if (inner_) inner_->on_attention(s);
  }
  void on_attention_probe(const model::AttentionProbe& p) override {
    if (inner_) inner_->on_attention_probe(p);
  }
  void on_mlp(model::MlpSite& m) override {
    if (inner_) inner_->on_mlp(m);
  }
  void on_block_post(model::BlockPost& b) override {
    if (inner_) inner_->on_block_post(b);
  }
  void on_kv(model::KvSite& kv) override {
    if (inner_) inner_->on_kv(kv);
  }
  void on_logits(at::Tensor& logits, bool prefill) override {
    if (inner_) inner_->on_logits(logits, prefill);
  }

 private:
  model::ForwardHooks* inner_;
  Clock::time_point start_ = Clock::now();
};

}  // namespace glimpse::bench
