#include "glimpse/pipeline/method_context.h"

#include <ATen/ATen.h>

#include "glimpse/core/error.h"

namespace glimpse::pipeline {

MethodContext::MethodContext(model::Model& model, const model::Processor* processor,
                             generate::Session* session)
    : model_(&model), processor_(processor), session_(session) {}

at::Tensor MethodContext::logits_from_hidden(const at::Tensor& hidden, std::int64_t layer) const {
  const std::int64_t layers = model_->num_layers();
  if (layer < 0 || layer >= layers) {
    throw InputError("logits_from_hidden: layer " + std::to_string(layer) + " outside [0, " +
                     std::to_string(layers) + ")");
  }
  const std::int64_t width = shape().hidden_size;
  if (!hidden.defined() || hidden.dim() < 1 || hidden.size(-1) != width) {
    throw InputError("logits_from_hidden: expected a hidden state [..., " + std::to_string(width) +
                     "]");
  }
  return model_->logits_from_hidden(hidden.to(model_->dtype()), /*apply_norm=*/true);
}

const model::Processor& MethodContext::processor() const {
  if (processor_ == nullptr)
    throw Error("method context: the pipeline was bound without a processor");
  return *processor_;
}

model::ForwardOutput MethodContext::forward(const model::ForwardInputs& inputs,
                                            const model::ForwardOptions& options) const {
  return model_->forward(inputs, options);
}

generate::Session& MethodContext::session() const {
  if (session_ == nullptr) throw Error("method context: the pipeline was bound without a session");
  return *session_;
}

}  // namespace glimpse::pipeline
