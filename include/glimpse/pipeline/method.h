#pragma once

// A test-time method (DESIGN.md section 7): one file under src/methods/ that reads or writes the
// hook sites (model/hooks.h) and writes its decisions and costs into the run Report. A Pipeline
// calls its methods in order at every site; a method sees only its own slice of a probe, even
// when the pipeline merged its request with others.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/core/config.h"
#include "glimpse/model/hooks.h"
#include "glimpse/pipeline/registry.h"
#include "glimpse/pipeline/report.h"

namespace glimpse::pipeline {

class MethodContext;

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string type() const = 0;
  // Appends this method's decisions and costs of the last run.
  virtual void report(Report& report) const = 0;

  // The model (and optionally processor and session) this method will run on: check parameters
  // against it (layers in range), keep the context for extra passes.
  virtual void bind(const MethodContext& context) {}

  // The probe this method wants at a site, if any; the result arrives at on_attention_probe with
  // exactly these rows and heads (reduced as asked).
  virtual std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) {
    return std::nullopt;
  }
  virtual void on_attention_probe(const model::AttentionProbe& probe) {}

  // The vision tower's probe this method wants at block `layer`, if any.
  virtual std::optional<model::VisionProbeRequest> vision_probe(std::int64_t layer) {
    return std::nullopt;
  }
  virtual void on_vision_attention_probe(const model::VisionAttentionProbe& probe) {}
  virtual void on_vision_block(model::VisionBlock& block) {}
  // In pipeline order; a method sees the keep of the methods before it applied.
  virtual void on_vision_features(model::VisionFeatures& features) {}
  virtual void on_vision_out(model::VisionOut& vision) {}
  // Runs in pipeline order; a method sees the keep of the methods before it applied (hidden and
  // layout already reduced) and may keep a subset of that.
  virtual void on_block_pre(model::BlockPre& block) {}
  virtual void on_attention(model::AttentionSite& site) {}
  virtual void on_mlp(model::MlpSite& mlp) {}
  virtual void on_block_post(model::BlockPost& block) {}
  virtual void on_kv(model::KvSite& kv) {}
  virtual void on_logits(at::Tensor& logits, bool prefill) {}
  virtual void on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) {}
};

using MethodRegistry = Registry<Method>;
using MethodFactory = MethodRegistry::Factory;
template <>
MethodRegistry& MethodRegistry::instance();

}  // namespace glimpse::pipeline
