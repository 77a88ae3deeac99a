#pragma once

// DeCo, Dynamic Correction Decoding (Wang et al., "MLLM can see? Dynamic Correction Decoding for
// Hallucination Mitigation", ICLR 2025). At every forward's last position: the final layer's
// candidates C (the top-k tokens, cut at cumulative probability top_p), the preceding layer in a
// window E whose logit lens gives one of them the highest probability p_max, and the final logits
// plus alpha * p_max times that layer's logits, with every token outside C at -inf. The logits
// processors and the sampler then run as usual (greedy or sampling).
// Official code: Deco transformers/generation/utils.py:GenerationMixin.deco_greedy_search (and the
// sample variant), logits from Deco transformers/models/llama/modeling_llama.py:
// LlamaForCausalLM.forward.
//
//   {"type": "deco", "alpha": 0.6, "top_p": 0.9, "top_k": 20, "layers": [first, last]}
//
// "layers" are decoder layers (blocks.{i}.post; hidden_states[i + 1] of the reference), inclusive.
// The default is the official early_exit_layers = range(20, 29) of hidden_states of the 32-layer
// LLaVA-1.5, scaled to the model as round(l * L / 32): blocks 19..27 at 32 layers.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::feedback {

// DeCo's choice for one row.
struct DecoChoice {
  std::int64_t anchor = 0;      // index into the lens layers of the anchor layer
  std::int64_t candidates = 0;  // |C|
  double p_max = 0;
};

// The calibrated logits [B, V] fp32 of `final_logits` [B, V] given the lens logits [E, B, V] of
// the window's layers (in layer order): z + alpha * p_max * z_anchor on C, -inf elsewhere. Ties of
// p_max go to the earliest layer, then the higher-ranked candidate (torch.argmax over the
// flattened [E, |C|] matrix). `choices` (optional) receives one entry per row.
at::Tensor deco_calibrate(const at::Tensor& final_logits, const at::Tensor& lens_logits,
                          double alpha, double top_p, std::int64_t top_k,
                          std::vector<DecoChoice>* choices = nullptr);

class DeCo : public pipeline::Method {
 public:
  // `layers`: {first, last} decoder layers of the window, or empty for the scaled default.
  DeCo(double alpha, double top_p, std::int64_t top_k, std::vector<std::int64_t> layers);
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "deco"; }
  void report(pipeline::Report& report) const override;
  void bind(const pipeline::MethodContext& context) override;
  void on_block_post(model::BlockPost& block) override;
  void on_logits(at::Tensor& logits, bool prefill) override;

  // The window's decoder layers after bind (increasing).
  const std::vector<std::int64_t>& window() const { return window_; }
  // Per calibrated forward and row, DeCo's choice (anchor indexes window()).
  const std::vector<DecoChoice>& choices() const { return choices_; }

 private:
  double alpha_, top_p_;
  std::int64_t top_k_;
  std::vector<std::int64_t> layers_;  // as given
  std::vector<std::int64_t> window_;  // resolved
  std::optional<pipeline::MethodContext> context_;
  std::vector<at::Tensor> lens_hidden_;  // this forward's last rows [B, H] per window layer
  std::vector<DecoChoice> choices_;
  std::int64_t skipped_ = 0;  // forwards that stopped before the window (an exit)
};

}  // namespace glimpse::methods::feedback
