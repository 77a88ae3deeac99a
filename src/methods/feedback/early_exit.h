#pragma once

// Early exit for text generation, glimpse's own after DeeR-VLA's criterion (Yue et al., NeurIPS
// 2024: DeeR-VLA robot_flamingo/models/value_net.py:ExitController.forward and
// ActionValueNet.forward). DeeR stops the LLM after an exit layer when the action its head decodes
// there changes little from the previous exit's; here the "head" is the model's own logit lens
// (final norm + LM head, no trained exit heads), and the change is the total variation distance
// between the next-token distributions of consecutive exit points. A decode step stops after exit
// layer i when that distance is at most `threshold` (DeeR's value <= T_i); the first exit point
// compares with the layer before it (DeeR's a_prev = head(feat_{i-1})), so threshold 1 always
// exits at the first exit point and threshold 0 only where two layers agree exactly. The layers a
// step skips get their K/V from their own k/v projections of the exit hidden state (BlockPost's
// exit), which the FLOPs saved are net of, as are the lens projections. The prompt's prefill
// always runs every layer; in a batch a step exits only when every sequence agrees.
//
//   {"type": "early_exit", "threshold": 0.1, "layers": [first, last], "interval": 2}
//
// Exit points are first, first + interval, ... up to last (decoder layers, blocks.{i}.post); the
// default starts at half depth, round(L / 2) - 1, where the lens of a trained model has begun to
// settle (near-uniform early-layer distributions would agree trivially), and ends at L - 2.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::feedback {

// 0.5 * sum |p - q| per row of two probability rows [B, V] -> [B] fp32.
at::Tensor total_variation(const at::Tensor& p, const at::Tensor& q);

class EarlyExit : public pipeline::Method {
 public:
  EarlyExit(double threshold, std::vector<std::int64_t> layers, std::int64_t interval);
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "early_exit"; }
  void report(pipeline::Report& report) const override;
  void bind(const pipeline::MethodContext& context) override;
  void on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) override;
  void on_block_post(model::BlockPost& block) override;

  // The exit points after bind.
  const std::vector<std::int64_t>& exits() const { return exits_; }
  // Per decode step, the layer after which it stopped (L - 1: it ran every layer).
  const std::vector<std::int64_t>& exit_layers() const { return exit_layers_; }

 private:
  double threshold_;
  std::vector<std::int64_t> layers_;
  std::int64_t interval_;
  std::vector<std::int64_t> exits_;
  std::optional<pipeline::MethodContext> context_;
  at::Tensor previous_;    // [B, V] the lens distribution of the previous exit point
  std::int64_t keys_ = 0;  // keys a step attends to (tokens before it + 1), for the FLOPs
  std::int64_t batch_ = 0;
  std::vector<std::int64_t> exit_layers_;
  double flops_full_ = 0, flops_run_ = 0, flops_fill_ = 0, flops_lens_ = 0;
};

}  // namespace glimpse::methods::feedback
