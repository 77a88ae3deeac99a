#pragma once

// CyberV (Meng et al., "CyberV: Cybernetics for Test-time Scaling in Video Understanding", arXiv
// 2506.07971) as a controller over one video prompt. Round 1: Best-of-N candidates, the greedy
// "origin" answer and N - 1 chain-of-thought samples ("Thinking process:\n", sampled thinking,
// then the final-answer prompt answered greedily); the sensor reads, for every candidate, the
// answer letter, the probability of its answer token, a repetition flag and the last decoder
// layer's attention from the row that emitted the answer, summed per video segment (32 temporal
// groups); Score Forest scores them and stops when the best option's score exceeds N * theta.
// Otherwise the segments whose attention dropped most (CoT against origin) name key frames,
// which round 2 appends as images with their timestamps and answers from; the driver's gate
// decides whether that answer replaces round 1's.
// Official code: CyberV model_transformers.py:QwenVL_Transformers.__call__ (sensor, key-frame
// prompt), utils.py:select_output (Score Forest, key frames, cyberv_score.h), test/
// test_videomme.py:process_batch (rounds, gate).
//
// Where glimpse differs, by design:
// - The prompt is prefilled once; every candidate forks its KV prefix, the CoT candidates decode
//   in one batch, and the final-answer prompt is appended after each one's thinking (the official
//   code re-prefills video, prompt and thinking for each of its 2N - 1 calls; the report gives
//   both counts). A CoT sequence that ends its thinking early keeps its eos and the batch's
//   padding before the final-answer prompt.
// - Round 2 forks the prompt and appends the key frames as a second user turn (the official code
//   edits the first turn and prefills everything again); the frames go through the processor as
//   images, so the tower runs on them only.
// - No ASR: the prompt's subtitle spans are not grouped (K2 = 0), so key frames come from the
//   video segments alone. The attention signal needs the last layer's keys unpruned.
//
//   {"type": "cyberv", "candidates": 8, "theta": 0.3, "temperature": 1.0, "top_p": 0.5,
//    "top_k": 5, "max_thinking_tokens": 4096, "letters": ["A", "B", "C", "D"],
//    "force_letter": false, "seed": 0}
//
// "force_letter" restricts the first token of every answer (origin, final answer, round 2) to
// the letters' tokens (a begin-suppress list), so that a model that would not answer with a
// letter still gives the sensors an answer token.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/pipeline/controller.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "methods/feedback/candidates.h"

namespace glimpse::methods::feedback {

// The sensor: a probe of the last decoder layer's newest row, summed over heads, at every pass.
class CyberVSensor : public pipeline::Method {
 public:
  std::string type() const override { return "cyberv_sensor"; }
  void report(pipeline::Report&) const override {}
  void bind(const pipeline::MethodContext& context) override;
  std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;

  // [B, keys] fp32: the last pass's row (attention each key got, summed over heads); settable so
  // that a fork starts from the row of the pass that made its first logits.
  const at::Tensor& latest() const { return latest_; }
  void set_latest(at::Tensor row) { latest_ = std::move(row); }

 private:
  std::int64_t layer_ = -1;
  at::Tensor latest_;
};

class CyberV : public pipeline::Controller {
 public:
  struct Options {
    std::int64_t candidates = 8;
    double theta = 0.3;
    Sampling sampling{1.0, 0.5, 5, std::nullopt};  // the CoT candidates' thinking
    std::int64_t max_thinking_tokens = 4096;
    std::vector<std::string> letters = {"A", "B", "C", "D"};
    bool force_letter = false;
  };
  explicit CyberV(Options options);
  ~CyberV() override;
  static std::unique_ptr<pipeline::Controller> create(const core::Config& params);

  std::string type() const override { return "cyberv"; }
  void attach(pipeline::Pipeline& pipeline) override;
  void bind(const pipeline::MethodContext& context) override;
  pipeline::ControllerResult run(const pipeline::ControllerRequest& request) override;
  std::string report_json() const override;

 private:
  Options options_;
  CyberVSensor sensor_;
  std::optional<pipeline::MethodContext> context_;
  std::vector<std::string> rounds_;  // JSON of the last run's rounds
};

}  // namespace glimpse::methods::feedback
