#pragma once

// Test-time methods composed from JSON (DESIGN.md section 7):
//   {"methods": [{"type": "fastv", "layer": 2, "ratio": 0.5}],
//    "controller": {"type": "self_consistency", "candidates": 5}}
// Registries map "type" strings to factories; unknown types and bad parameters are ConfigErrors
// that name the key. The optional controller (controller.h) runs rounds of whole generations;
// the methods run inside every forward of them. A Pipeline is the ForwardHooks of a run: it calls
// its methods in order at every hook site, merges their probe requests at each layer (one
// computation per site; each method gets its own rows and heads back) and collects their report
// entries.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/model/hooks.h"
#include "glimpse/pipeline/controller.h"
#include "glimpse/pipeline/method.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/report.h"

namespace glimpse::pipeline {

class Pipeline : public model::ForwardHooks {
 public:
  Pipeline() = default;
  // `spec` is JSON text; `source` names it in errors (a file name, or "--pipeline").
  static Pipeline from_json(const std::string& spec, const std::string& source);
  // A file path, or JSON text when it starts with '{'.
  static Pipeline from_argument(const std::string& argument);

  void add(std::unique_ptr<Method> method);
  // A method the caller owns (and keeps alive while the pipeline runs), to read its results.
  void attach(Method& method) { methods_.push_back(&method); }
  bool empty() const { return methods_.empty(); }
  const std::vector<Method*>& methods() const { return methods_; }
  // Owns `controller` and lets it attach its sensors (Controller::attach).
  void set_controller(std::unique_ptr<Controller> controller) {
    controller_ = std::move(controller);
    controller_->attach(*this);
  }
  // The round-level loop, nullptr when the pipeline has none.
  Controller* controller() const { return controller_.get(); }
  // The methods' entries, and the controller's object under "controller".
  Report report() const;

  // Gives every method, then the controller, the context (in order); the errors of a method
  // that does not fit the model (a layer out of range) surface here.
  void bind(const MethodContext& context);

  bool active() const override { return !methods_.empty(); }
  std::vector<model::ProbeRequest> probes(const model::ProbeSite& site) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;
  std::vector<model::VisionProbeRequest> vision_probes(std::int64_t layer) override;
  void on_vision_attention_probe(const model::VisionAttentionProbe& probe) override;
  void on_vision_block(model::VisionBlock& block) override;
  void on_vision_features(model::VisionFeatures& features) override;
  void on_vision_out(model::VisionOut& vision) override;
  void on_block_pre(model::BlockPre& block) override;
  void on_attention(model::AttentionSite& site) override;
  void on_mlp(model::MlpSite& mlp) override;
  void on_block_post(model::BlockPost& block) override;
  void on_kv(model::KvSite& kv) override;
  void on_logits(at::Tensor& logits, bool prefill) override;
  void on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) override;

 private:
  // A method's request at the current site and which merged request answers it.
  struct Asked {
    std::size_t method = 0;
    model::ProbeRequest request;
    std::size_t merged = 0;
  };
  std::vector<std::unique_ptr<Method>> owned_;
  std::vector<Method*> methods_;  // in order, owned or attached
  std::unique_ptr<Controller> controller_;
  std::vector<Asked> asked_;  // of the last probes() call
  // Per method, which merged vision probe answers it at the current block (-1: none).
  std::vector<std::int64_t> vision_asked_;
};

}  // namespace glimpse::pipeline
