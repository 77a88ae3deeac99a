#pragma once

// VisionZip (Yang et al., "VisionZip: Longer is Better but Not Necessary in Vision Language
// Models"): before the LLM, each medium keeps its `dominant` most attended visual tokens and merges
// the rest into `contextual` tokens by key similarity.
//   LLaVA (CLIP), as the official code: the CLS attention of vision block L-2 (the layer LLaVA
//   selects) ranks the patches; keys of that block averaged over heads are the merge metric; the
//   merge works on the selected features before the projector (vision.features).
//   Qwen2-VL / 2.5-VL, as EffiVLM-Bench's port: block depth-2's attention averaged over heads and
//   queries, then over each 2x2 merge group; keys (after RoPE) averaged over heads and the group;
//   the merge works on the merger's output (vision.out).
// Kept and merged tokens stay at their own rows: a contextual token sits at its target's row.
// Official code: VisionZip visionzip/clip_encoder.py:CLIPVisionTower_VisionZip.forward and
// visionzip/utils.py:CLIPAttention_forward; EffiVLM-Bench kv_cache_compression/qwen2vl_model.py:
// qwen2vl_vision_tower_forward_visionzip.

#include <memory>
#include <vector>

#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::prune {

struct VisionZipOptions {
  // Absolute counts per medium (LLM tokens), or -1 for the default. Dominant tokens include the
  // CLS token where the features carry one (LLaVA's "full" strategy), as the official count does.
  std::int64_t dominant = -1, contextual = -1;
  // Fraction of each medium's visual tokens removed (EffiVLM's budget is 1 - ratio, split 5.4 :
  // 1 between dominant and contextual); -1: unused. 0 keeps every token (the identity).
  double ratio = -1;
  std::int64_t layer = -2;  // vision block whose attention and keys rank and merge; < 0: from end
};

class VisionZip : public pipeline::Method {
 public:
  explicit VisionZip(VisionZipOptions options);
  // {"type": "visionzip", "dominant": D, "contextual": C} or {"type": "visionzip", "ratio": R};
  // neither: the paper's 191 and 30 of 576 as fractions of each medium's tokens. "layer": vision
  // block (default -2).
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "visionzip"; }
  void report(pipeline::Report& report) const override;

  void bind(const pipeline::MethodContext& context) override;
  std::optional<model::VisionProbeRequest> vision_probe(std::int64_t layer) override;
  void on_vision_attention_probe(const model::VisionAttentionProbe& probe) override;
  void on_vision_features(model::VisionFeatures& features) override;
  void on_vision_out(model::VisionOut& vision) override;

  // The dominant and contextual counts for a medium of `tokens` visual tokens.
  std::pair<std::int64_t, std::int64_t> budget(std::int64_t tokens) const;
  // Per medium of the last pass (images, then videos): kept token indices into the medium.
  const std::vector<at::Tensor>& kept() const { return kept_; }

 private:
  struct Ranking {
    std::vector<at::Tensor> scores;  // per medium [tokens]
    std::vector<at::Tensor> metric;  // per medium [tokens, d]
  };
  // Keeps and merges each medium's rows of `features` (the first `cls_rows` are CLS, always
  // dominant); returns the kept indices per medium and replaces the features by the kept ones.
  std::vector<at::Tensor> zip(std::vector<at::Tensor>& features, const Ranking& ranking,
                              std::int64_t cls_rows);
  void count_costs(const model::TokenLayout* layout, const std::vector<model::Modality>& kinds);

  VisionZipOptions options_;
  bool qwen_ = false;  // merge at vision.out (EffiVLM's port) instead of vision.features
  std::int64_t group_ = 1, vision_layer_ = -1;
  const model::DecoderShape* shape_ = nullptr;
  Ranking images_, videos_;
  std::vector<at::Tensor> kept_;
  std::vector<std::int64_t> before_, dominant_, contextual_;  // per medium
  double flops_before_ = 0, flops_after_ = 0;
};

}  // namespace glimpse::methods::prune
