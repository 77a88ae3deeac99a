#pragma once

// PyramidDrop (Xing et al., "PyramidDrop: Accelerating Your Large Vision-Language Models via
// Pyramid Visual Redundancy Reduction"): the visual tokens shrink in stages. Before each layer l of
// `layers`, the visual tokens still present are ranked by the attention the last prompt token pays
// them, computed with layer l's own input norm, q/k projections and RoPE on the sequence entering
// it (head mean), and int(N0 * keep_ratio[i]) of the N0 visual tokens the sequence entered the
// LLM with survive. Positions are renumbered (PositionPolicy::Compact), as the official code does.
// Prefill only; decode steps keep the shifts. In a batch each sequence is ranked by its own row.
// Official code: PyramidDrop llava/model/modeling_llama_pdrop.py:{pdrop_forward, pdrop_rank_drop}.

#include <memory>
#include <vector>

#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::prune {

class PyramidDrop : public pipeline::Method {
 public:
  // `layers` empty: the paper's [8, 16, 24] scaled to the model (selection.h: scale_layer).
  // `keep_ratios` empty: (1 - ratio)^(i+1) for stage i, the paper's lambda = 1 - ratio.
  PyramidDrop(std::vector<std::int64_t> layers, std::vector<double> keep_ratios, double ratio);
  // {"type": "pdrop", "layers": [l1, ...] (default [8,16,24] scaled), "ratio": R (fraction of
  //  the stage's visual tokens removed at each boundary, default 0.5) or "keep_ratios":
  //  [fraction of N0 kept after each stage] (the official image_token_ratio_list)}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "pdrop"; }
  void report(pipeline::Report& report) const override;

  void bind(const pipeline::MethodContext& context) override;
  std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;
  void on_block_pre(model::BlockPre& block) override;

  // The stage boundaries and kept fractions resolved for a decoder of `num_layers` layers.
  void resolve(std::int64_t num_layers);
  const std::vector<std::int64_t>& layers() const { return layers_; }
  const std::vector<double>& keep_ratios() const { return keep_ratios_; }
  // The kept rows of each stage of the last prefill (BlockPre::keep as given), one per stage.
  const std::vector<at::Tensor>& kept() const { return kept_; }

 private:
  std::vector<std::int64_t> layers_given_, layers_;
  std::vector<double> keep_ratios_given_, keep_ratios_;
  double ratio_;
  std::int64_t resolved_for_ = -1;
  at::Tensor scores_;             // [B, keys] of the stage being entered
  std::vector<std::int64_t> n0_;  // visual tokens per sequence at layer 0
  std::vector<at::Tensor> kept_;
  std::vector<std::int64_t> visual_per_layer_;  // summed over the batch
  std::int64_t first_length_ = 0;               // tokens entering layer 0
  double flops_before_ = 0, flops_after_ = 0;
  bool applied_ = false;
};

}  // namespace glimpse::methods::prune
