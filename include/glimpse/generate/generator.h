#pragma once

// Step-level generation over a Session: each step runs the logits processors of the generation
// config in Hugging Face's order (logits_process.h), chooses one token per sequence (greedy, or
// sampled with the sequence's own seeded generator), reports it to a callback with its scores,
// and feeds it back. Batches follow transformers' GenerationMixin._sample: a finished sequence
// keeps receiving pad_token_id until every sequence is done.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "glimpse/generate/generation_config.h"
#include "glimpse/generate/logits_process.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"

namespace glimpse::text {
class Tokenizer;
}

namespace glimpse::generate {

// What a step callback sees (valid during the call).
struct StepInfo {
  std::int64_t step = 0;
  const at::Tensor* logits = nullptr;  // raw logits the model gave [B, V]
  const at::Tensor* scores = nullptr;  // after the logits processors [B, V] fp32
  const at::Tensor* tokens = nullptr;  // chosen [B] int64 (pad for finished sequences)
  const at::Tensor* hidden = nullptr;  // last hidden state [B, H] with keep_hidden, else undefined
  // Per sequence: log-prob, entropy and top-1/top-2 margin of the processed distribution.
  const std::vector<TokenScores>* token_scores = nullptr;
  const at::Tensor* finished = nullptr;  // [B] bool after this step
};

// Return false to stop generating.
using StepCallback = std::function<bool(const StepInfo& step)>;

struct GenerateOptions {
  model::ForwardHooks* hooks = nullptr;  // test-time methods (a Pipeline), not owned
  bool keep_step_logits = false;         // the reference's output_logits=True (raw logits per step)
  bool keep_hidden = false;              // pass the last hidden state to the callback
  // Sampling seed of each sequence; empty: config.seed + i for sequence i (fork i of a
  // --num-return-sequences run samples with seed + i).
  std::vector<std::uint64_t> seeds;
  // Needed for config.stop_strings (the decoded text of each sequence is matched).
  const text::Tokenizer* tokenizer = nullptr;
  StepCallback on_step;
};

struct GenerationResult {
  at::Tensor sequences;                 // [B, S + n] prompt (session ids) then new tokens
  at::Tensor new_tokens;                // [B, n]
  std::vector<at::Tensor> step_logits;  // n tensors [B, V] with keep_step_logits
  std::vector<double> mean_logprob;     // per sequence, over its tokens before it finished
  std::vector<std::int64_t> lengths;    // per sequence: tokens generated, eos included
  std::int64_t prefill_tokens = 0;
  double prefill_ms = 0, decode_ms = 0;
};

class Generator {
 public:
  // Generates from the session's last logits. The session (not owned) must outlive the
  // generator; the config is validated here.
  Generator(Session& session, GenerationConfig config, GenerateOptions options = {});
  ~Generator();

  // Chooses and reports one token per sequence, feeding the previous step's tokens first.
  // Returns false (choosing nothing) once every sequence stopped or max_new_tokens is reached.
  bool step();
  // Steps until done; the tokens of the last step are not fed (as the reference's generate).
  GenerationResult run();
  // Feeds the last chosen tokens into the session, so that an append continues after them.
  void flush();

  const at::Tensor& new_tokens() const;  // [B, n] so far
  bool done() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Prefill + Generator::run in one call: a Session on `inputs`, then generation.
GenerationResult generate(model::Model& model, const model::ForwardInputs& inputs,
                          const GenerationConfig& config, const GenerateOptions& options = {});

}  // namespace glimpse::generate
