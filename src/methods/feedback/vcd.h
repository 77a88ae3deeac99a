#pragma once

// VCD, Visual Contrastive Decoding (Leng et al., CVPR 2024): a second Session on a
// diffusion-noised copy of the preprocessed pixels, advanced in lockstep with the run's session,
// and at every step the contrast (1 + alpha) l - alpha l' of the two logit rows, restricted to
// the tokens whose real-image probability is at least beta times the top one (the adaptive
// plausibility constraint). Two prefills and two forwards per token, both reported.
// Official code: VCD vcd_utils/vcd_add_noise.py:add_diffusion_noise, vcd_utils/vcd_sample.py:
// sample. The official code patches only sampling (greedy silently runs without VCD); glimpse
// rewrites the logits before the processors, so greedy decoding contrasts too.
//
//   {"type": "vcd", "alpha": 1.0, "beta": 0.1, "noise_step": 500, "seed": 42}
//
// Forks and stacks of the run's session are followed: a pass whose tokens before it are not the
// contrast session's re-forks the contrast prompt (the tokens after the prompt, if any, are
// appended as text). The contrast session runs without the pipeline's other methods.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "glimpse/generate/session.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::feedback {

// sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) of VCD's schedule (1000 steps, betas =
// sigmoid(linspace(-6, 6)) * (5e-3 - 1e-5) + 1e-5), computed in fp32 as the official code does.
struct DiffusionNoise {
  double signal = 1, noise = 0;
};
DiffusionNoise diffusion_noise(std::int64_t step);

// pixels * signal + noise * N(0, 1) drawn from `generator`, in the pixels' dtype.
at::Tensor add_diffusion_noise(const at::Tensor& pixels, std::int64_t step,
                               at::Generator& generator);

// (1 + alpha) logits - alpha noised, with -inf where logits < log(beta) + max(logits); [B, V]
// rows, fp32.
at::Tensor contrast_logits(const at::Tensor& logits, const at::Tensor& noised, double alpha,
                           double beta);

class VCD : public pipeline::Method {
 public:
  VCD(double alpha, double beta, std::int64_t noise_step, std::uint64_t seed);
  ~VCD() override;
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "vcd"; }
  void report(pipeline::Report& report) const override;
  void bind(const pipeline::MethodContext& context) override;
  void on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) override;
  void on_logits(at::Tensor& logits, bool prefill) override;

  // The session on the noised inputs that follows the last pass (nullptr before a prefill).
  const generate::Session* contrast() const { return current_ ? &*current_ : nullptr; }

 private:
  model::ForwardInputs noised(const model::ForwardInputs& inputs);
  // Brings current_ to the tokens `before` of the run's session (forks of the contrast prompt).
  void follow(const at::Tensor& before);

  double alpha_, beta_;
  std::int64_t noise_step_;
  std::uint64_t seed_;
  std::optional<pipeline::MethodContext> context_;
  std::optional<at::Generator> generator_;
  std::optional<generate::Session> prompt_;   // the contrast prompt (batch 1), forked from
  std::optional<generate::Session> current_;  // follows the run's session
  std::optional<model::ForwardInputs> pending_;
  at::Tensor pending_before_;
  std::int64_t contrast_prefills_ = 0, contrast_forwards_ = 0, refollows_ = 0;
  std::int64_t noised_tensors_ = 0, calibrated_ = 0, outside_session_ = 0;
};

}  // namespace glimpse::methods::feedback
