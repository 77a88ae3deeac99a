#pragma once

// Round-level loops (DESIGN.md section 5): a Controller runs whole generations over a prefilled
// Session (forks that share its KV prefix, decoded in batches), reads their signals and either
// accepts an answer or runs another round with new inputs. It sits under the pipeline's
// "controller" key; the pipeline's per-forward methods stay the session's hooks, so they apply
// inside every round (FastV inside a self-consistency round).
//
//   {"methods": [{"type": "fastv", "layer": 2, "ratio": 0.5}],
//    "controller": {"type": "self_consistency", "candidates": 5}}

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "glimpse/generate/generation_config.h"
#include "glimpse/pipeline/registry.h"

namespace glimpse::generate {
class Session;
}
namespace glimpse::model {
struct ProcessorRequest;
struct ProcessedInputs;
}  // namespace glimpse::model

namespace glimpse::pipeline {

class MethodContext;
class Pipeline;

struct ControllerRequest {
  // Prefilled with the prompt (batch 1), the pipeline as its hooks; the controller forks it and
  // leaves it usable.
  generate::Session* session = nullptr;
  // The run's settings; eos ids set. Candidate 0 of a round decodes with them.
  generate::GenerationConfig config;
  // The request and processed inputs the prompt came from, for rounds that add media (key
  // frames); optional for controllers that only fork.
  const model::ProcessorRequest* request = nullptr;
  const model::ProcessedInputs* processed = nullptr;
};

struct ControllerResult {
  std::vector<std::int64_t> ids;  // the accepted answer's new tokens (eos included when emitted)
  std::string answer;             // decoded without special tokens
  std::int64_t round = 0;         // the round it came from (0-based)
  std::int64_t candidate = 0;     // and its candidate there
};

class Controller {
 public:
  virtual ~Controller() = default;
  virtual std::string type() const = 0;
  // Called when the controller joins `pipeline`: a controller whose sensors read the forward
  // passes (CyberV's attention rows) attaches them here, after the pipeline's methods, so that
  // they also see the prompt's prefill and every fork.
  virtual void attach(Pipeline& pipeline) {}
  // Checks the parameters against the model; a controller needs the context's processor (its
  // tokenizer decodes and parses the candidates).
  virtual void bind(const MethodContext& context) = 0;
  // Runs the rounds; the accepted answer. Throws InputError for a request it cannot serve.
  virtual ControllerResult run(const ControllerRequest& request) = 0;
  // The report's "controller" object, JSON: {"type", <resolved parameters>, "rounds":
  // [{"prefills", "candidates", "accepted", ...}]} of the last run.
  virtual std::string report_json() const = 0;
};

using ControllerRegistry = Registry<Controller>;
template <>
ControllerRegistry& ControllerRegistry::instance();

}  // namespace glimpse::pipeline
