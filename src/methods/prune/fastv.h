#pragma once

// FastV (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2"): at layer K, drop the
// fraction R of visual tokens that the last prompt token attends to least at layer K-1 (head
// mean), keeping round(N(1-R)) with their original positions. Prefill only; the cache of layers
// >= K holds the kept tokens and decode positions continue from the full prompt length. In a
// batch each sequence is ranked by its own last row (the official code asserts batch 1).
// Official code: FastV src/transformers/.../modeling_llama.py:LlamaModel.forward (in-place path)
// and llava-hf/.../modeling_llama.py:LlamaModel.fastv_forward (KV cache). The older
// modeling_llama_fastv_kvcache.py's compacted decode positions are a bug and are not copied.

#include <memory>

#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::prune {

class FastV : public pipeline::Method {
 public:
  FastV(std::int64_t layer, double ratio);
  // {"type": "fastv", "layer": K (default 2), "ratio": R (default 0.5)}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "fastv"; }
  void report(pipeline::Report& report) const override;

  void bind(const pipeline::MethodContext& context) override;
  std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;
  void on_block_pre(model::BlockPre& block) override;

  void check_layer(std::int64_t layers) const;
  // The kept indices of the last prefill (into the sequence as it entered layer K): [S'], or for
  // a batch [B, S'] with each sequence's own tokens, left-padded with -1.
  const at::Tensor& kept() const { return kept_; }

 private:
  std::int64_t layer_;
  double ratio_;
  at::Tensor scores_;  // [B, keys] head-mean attention of the last row at layer K-1
  at::Tensor kept_;
  std::int64_t before_ = 0, after_ = 0;
  double flops_before_ = 0, flops_after_ = 0;
  bool applied_ = false;
};

}  // namespace glimpse::methods::prune
