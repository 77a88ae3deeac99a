#pragma once

// The logit lens as a pipeline method ("logit_lens"): at blocks.{i}.post of the prefill, the LM
// head over the chosen row of the residual stream (MethodContext::logits_from_hidden: final norm,
// then lm_head), so it composes with pruning methods in one run: the row follows its token
// through the layout. The last layer's lens equals the model's logits.
//
//   {"type": "logit_lens", "layers": [..] (default all), "position": "last" or a prompt index,
//    "top_k": 5}

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "glimpse/methods/inspect/logit_lens.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::inspect {

class LogitLens : public pipeline::Method {
 public:
  // position < 0: the last token.
  LogitLens(std::vector<std::int64_t> layers, std::int64_t position, std::int64_t top_k);
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "logit_lens"; }
  void report(pipeline::Report& report) const override;
  void bind(const pipeline::MethodContext& context) override;
  void on_block_post(model::BlockPost& block) override;

  // The layers read in the last prefill, increasing, and their lens logits [layers, B, V] fp32.
  const std::vector<std::int64_t>& layers_read() const { return read_; }
  at::Tensor logits() const;
  // Top tokens of sequence `row` per layer read.
  std::vector<LensLayer> top(std::int64_t row = 0) const;

 private:
  std::vector<std::int64_t> layers_;  // empty: all
  std::int64_t position_, top_k_;
  std::optional<pipeline::MethodContext> context_;
  std::vector<std::int64_t> read_;
  std::vector<at::Tensor> logits_;  // per layer read [B, V]
};

}  // namespace glimpse::methods::inspect
