#pragma once

// What a method may use besides the hook sites (given by Pipeline::bind): the model's shapes, the
// LM head over any hidden state (logit lens, DeCo, early exit), its weights by state-dict name
// (MemVR's FFN memory), the processor (to make extra inputs: VCD's distorted image, a crop), extra
// forward passes, and the Session the pipeline runs in (to fork it: CyberV's rounds).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "glimpse/model/model.h"

namespace glimpse::model {
class Processor;
}
namespace glimpse::generate {
class Session;
}

namespace glimpse::pipeline {

class MethodContext {
 public:
  // `model` must outlive the context; `processor` and `session` are optional (not owned).
  explicit MethodContext(model::Model& model, const model::Processor* processor = nullptr,
                         generate::Session* session = nullptr);

  model::Model& model() const { return *model_; }
  const model::DecoderShape& shape() const { return model_->decoder_shape(); }
  std::int64_t num_layers() const { return model_->num_layers(); }
  std::int64_t vocab_size() const { return model_->vocab_size(); }

  // Logits [..., V] of a residual-stream hidden state [..., H] that decoder layer `layer` output
  // (blocks.{layer}.post): the final norm, then the LM head. For the last layer this is the
  // model's own logits. Throws InputError for a layer outside [0, layers) or a wrong width.
  at::Tensor logits_from_hidden(const at::Tensor& hidden, std::int64_t layer) const;
  // A weight by state-dict name (Model::weight); read only.
  at::Tensor weight(const std::string& name) const { return model_->weight(name); }

  bool has_processor() const { return processor_ != nullptr; }
  // Throws Error naming the method-facing call when the pipeline was bound without one.
  const model::Processor& processor() const;

  // An extra forward pass of the model without a cache. The pipeline's own hooks are not
  // applied unless `options.hooks` says so (a method calling itself would recurse).
  model::ForwardOutput forward(const model::ForwardInputs& inputs,
                               const model::ForwardOptions& options = {}) const;

  bool has_session() const { return session_ != nullptr; }
  // The session the pipeline was bound to (fork it for extra rounds); throws Error without one.
  generate::Session& session() const;

 private:
  model::Model* model_;
  const model::Processor* processor_;
  generate::Session* session_;
};

}  // namespace glimpse::pipeline
