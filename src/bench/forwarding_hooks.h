#pragma once

// Hooks that pass every site on to another hooks object (or to nothing): the base of the
// benchmark's wrappers, which each override the one site they watch.

#include "glimpse/model/hooks.h"

namespace glimpse::bench {

class ForwardingHooks : public model::ForwardHooks {
 public:
  explicit ForwardingHooks(model::ForwardHooks* inner) : inner_(inner) {}

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

 protected:
  model::ForwardHooks* inner_;
};

}  // namespace glimpse::bench
