#pragma once

// MemVR, "Look Twice Before You Answer: Memory-Space Visual Retracing for Hallucination
// Mitigation in Multimodal Large Language Models" (Zou et al., ICML 2025). In every forward
// (prefill and decode steps), the logit lens at the last position of each layer l inside the
// window (start, end) gives the normalised entropy of its top-10 probabilities; at the first
// layer where it exceeds the threshold, layer l + 1's FFN gets a key-value memory of the prompt's
// visual tokens Z (the projector's output): A = act(x W1^T) W2^T with W1 = mean|W_up| / mean|Z| Z
// and W2 = mean|W_down| / mean|Z| Z^T, rescaled to mean|F| and mixed as (1 - alpha) F + alpha A.
// At most one layer per forward and sequence; no extra pass, nothing trained.
// Official code: MemVR memvr.py:LlamaMLP.forward (the retraced FFN) and memvr.py:forward (the
// patched LlamaModel.forward: entropy and trigger).
//
//   {"type": "memvr", "threshold": 0.75, "alpha": 0.12, "layers": [start, end],
//    "activation": "none" | "silu"}
//
// "layers" are exclusive bounds on the triggering layer, as the official start < l < end; the
// default is LLaVA-1.5's (5, 16) of 32 layers scaled as round(l * L / 32). "activation" "none" is
// the LLaVA variant (the one the official scripts run); "silu" the Qwen-VL / GLM-4V files'
// (MemVR modeling/modeling_qwen.py:QWenMLP.forward), whose shipped scripts never turn it on.
// Where mean|A| = 0 (Z = 0) the official code yields NaN; glimpse leaves the FFN as it is.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::feedback {

// -sum p log p / log k of softmax(top-k of each row) [B, V] -> [B] fp32, in [0, 1].
at::Tensor top_entropy(const at::Tensor& logits, std::int64_t k = 10);

// The retraced FFN output of one sequence: x [S, H] the FFN input, f [S, H] its output, z [N, H]
// the visual memory; w_up and w_down the mean |weight| of the layer's up and down projections.
// Returns f unchanged when the memory's output is all zero.
at::Tensor retrace_ffn(const at::Tensor& x, const at::Tensor& f, const at::Tensor& z, double w_up,
                       double w_down, double alpha, bool silu);

class MemVR : public pipeline::Method {
 public:
  MemVR(double threshold, double alpha, std::vector<std::int64_t> layers, bool silu);
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "memvr"; }
  void report(pipeline::Report& report) const override;
  void bind(const pipeline::MethodContext& context) override;
  void on_vision_out(model::VisionOut& vision) override;
  void on_block_pre(model::BlockPre& block) override;
  void on_mlp(model::MlpSite& mlp) override;
  void on_block_post(model::BlockPost& block) override;

  // Per forward and sequence, the layer whose FFN was retraced (-1: none), in order.
  const std::vector<std::int64_t>& retraced() const { return retraced_; }

 private:
  double threshold_, alpha_;
  std::vector<std::int64_t> layers_;  // as given
  std::int64_t start_ = 0, end_ = 0;  // resolved exclusive bounds
  bool silu_;
  std::optional<pipeline::MethodContext> context_;
  std::vector<double> w_up_, w_down_;  // mean |weight| per decoder layer
  at::Tensor memory_;                  // [N, H] the session's visual tokens; undefined: none
  at::Tensor incoming_;                // this pass's, from vision.out
  std::vector<std::int64_t> armed_;    // per sequence of this forward: the layer to retrace
  std::vector<std::int64_t> retraced_;
  std::int64_t forwards_ = 0, lens_rows_ = 0;
};

}  // namespace glimpse::methods::feedback
