#include "methods/feedback/vcd.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "glimpse/core/error.h"

namespace glimpse::methods::feedback {

namespace {

constexpr std::int64_t kSteps = 1000;

bool has_media(const model::ForwardInputs& in) {
  return in.pixel_values.defined() || in.pixel_values_videos.defined() ||
         in.image_embeds.defined() || in.video_embeds.defined();
}

}  // namespace

DiffusionNoise diffusion_noise(std::int64_t step) {
  if (step < 0 || step >= kSteps) {
    throw InputError("vcd: noise_step " + std::to_string(step) + " outside [0, 999]");
  }
  // VCD vcd_add_noise.py:add_diffusion_noise, in torch's default fp32.
  const at::Tensor betas =
      at::sigmoid(at::linspace(-6, 6, kSteps, at::kFloat)) * (0.5e-2 - 1e-5) + 1e-5;
  const at::Tensor alphas_prod = at::cumprod(1 - betas, 0);
  DiffusionNoise n;
  n.signal = at::sqrt(alphas_prod[step]).item<double>();
  n.noise = at::sqrt(1 - alphas_prod[step]).item<double>();
  return n;
}

at::Tensor add_diffusion_noise(const at::Tensor& pixels, std::int64_t step,
                               at::Generator& generator) {
  const DiffusionNoise n = diffusion_noise(step);
  const at::Tensor x = pixels.to(at::kFloat);
  const at::Tensor eps = at::randn(x.sizes(), generator, x.options());
  return (x * n.signal + eps * n.noise).to(pixels.scalar_type());
}

at::Tensor contrast_logits(const at::Tensor& logits, const at::Tensor& noised, double alpha,
                           double beta) {
  if (logits.dim() != 2 || noised.sizes() != logits.sizes()) {
    throw InputError("vcd: expected two logit rows [B, V] of the same shape");
  }
  const at::Tensor l = logits.to(at::kFloat);
  const at::Tensor cutoff = std::log(beta) + std::get<0>(l.max(-1, /*keepdim=*/true));
  const at::Tensor d = (1 + alpha) * l - alpha * noised.to(at::kFloat);
  return d.masked_fill(l < cutoff, -std::numeric_limits<float>::infinity());
}

VCD::VCD(double alpha, double beta, std::int64_t noise_step, std::uint64_t seed)
    : alpha_(alpha), beta_(beta), noise_step_(noise_step), seed_(seed) {}

VCD::~VCD() = default;

std::unique_ptr<pipeline::Method> VCD::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "alpha" && key != "beta" && key != "noise_step" && key != "seed")
      params.fail(key, "unknown VCD parameter (expected alpha, beta, noise_step, seed)");
  }
  // The evaluation scripts' defaults (VCD experiments/eval/object_hallucination_vqa_*.py).
  const double alpha = params.get_float("alpha", 1.0);
  if (!std::isfinite(alpha) || alpha < 0) params.fail("alpha", "expected a finite value >= 0");
  const double beta = params.get_float("beta", 0.1);
  if (!(beta > 0 && beta <= 1)) params.fail("beta", "expected a value in (0, 1]");
  const std::int64_t step = params.get_int("noise_step", 500);
  if (step < 0 || step >= kSteps) params.fail("noise_step", "expected a step in [0, 999]");
  const std::int64_t seed = params.get_int("seed", 42);
  if (seed < 0) params.fail("seed", "expected a value >= 0");
  return std::make_unique<VCD>(alpha, beta, step, static_cast<std::uint64_t>(seed));
}

void VCD::bind(const pipeline::MethodContext& context) {
  context_ = context;
}

model::ForwardInputs VCD::noised(const model::ForwardInputs& inputs) {
  if (inputs.image_embeds.defined() || inputs.video_embeds.defined()) {
    throw InputError(
        "vcd: the inputs carry precomputed media embeddings; VCD noises the pixel values");
  }
  model::ForwardInputs out = inputs;
  if (out.pixel_values.defined()) {
    out.pixel_values = add_diffusion_noise(out.pixel_values, noise_step_, *generator_);
    ++noised_tensors_;
  }
  if (out.pixel_values_videos.defined()) {
    out.pixel_values_videos =
        add_diffusion_noise(out.pixel_values_videos, noise_step_, *generator_);
    ++noised_tensors_;
  }
  return out;
}

void VCD::on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) {
  pending_ = inputs;
  pending_before_ = before;
}

void VCD::follow(const at::Tensor& before) {
  if (current_ && current_->ids().sizes() == before.sizes() && at::equal(current_->ids(), before))
    return;
  if (!prompt_) {
    throw InputError(
        "vcd: the session's tokens do not continue the contrast session (a batch prompt cannot be "
        "forked)");
  }
  const at::Tensor prompt = prompt_->ids();
  const std::int64_t p = prompt.size(1), b = before.size(0);
  if (before.size(1) < p || !at::equal(before.narrow(1, 0, p), prompt.expand({b, p}))) {
    throw InputError("vcd: the session's tokens do not continue the prompt VCD prefilled");
  }
  current_.reset();
  current_.emplace(b == 1 ? std::move(prompt_->fork(1)[0])
                          : generate::Session::stack(prompt_->fork(b)));
  ++refollows_;
  if (before.size(1) > p) {
    model::ForwardInputs tail;
    tail.input_ids = before.narrow(1, p, before.size(1) - p).contiguous();
    current_->append(tail);
    ++contrast_forwards_;
  }
}

void VCD::on_logits(at::Tensor& logits, bool prefill) {
  if (!context_) throw Error("vcd: bind the pipeline to the model first (Pipeline::bind)");
  if (!pending_) {  // a forward outside a Session (Model::forward): nothing to contrast with
    ++outside_session_;
    return;
  }
  const model::ForwardInputs in = std::move(*pending_);
  pending_.reset();
  at::Tensor noised_logits;
  if (!pending_before_.defined()) {
    // The session's prompt: the contrast session prefills the noised copy, with noise drawn
    // afresh from the seed so that every run is reproducible.
    generator_ = at::make_generator<at::CPUGeneratorImpl>(seed_);
    prompt_.reset();
    current_.reset();
    contrast_prefills_ = contrast_forwards_ = refollows_ = noised_tensors_ = calibrated_ = 0;
    generate::Session contrast(context_->model());
    noised_logits = contrast.prefill(noised(in));
    ++contrast_prefills_;
    if (contrast.batch() == 1) {
      prompt_.emplace(std::move(contrast));
      current_.emplace(std::move(prompt_->fork(1)[0]));
    } else {
      current_.emplace(std::move(contrast));
    }
  } else {
    follow(pending_before_);
    const bool step = in.input_ids.size(1) == 1 && !has_media(in) &&
                      (!in.attention_mask.defined() || in.attention_mask.eq(1).all().item<bool>());
    noised_logits = step ? current_->step(in.input_ids.view({-1})) : current_->append(noised(in));
    ++contrast_forwards_;
  }
  at::Tensor last = logits.dim() == 3 ? logits.select(1, logits.size(1) - 1) : logits;
  last.copy_(contrast_logits(last, noised_logits, alpha_, beta_));
  ++calibrated_;
}

void VCD::report(pipeline::Report& report) const {
  auto& e = report.add("vcd");
  e.numbers["alpha"] = alpha_;
  e.numbers["beta"] = beta_;
  e.numbers["noise_step"] = static_cast<double>(noise_step_);
  e.numbers["seed"] = static_cast<double>(seed_);
  const DiffusionNoise n = diffusion_noise(noise_step_);
  e.numbers["signal_scale"] = n.signal;  // v' = signal_scale * v + noise_scale * eps
  e.numbers["noise_scale"] = n.noise;
  e.numbers["contrast_prefills"] = static_cast<double>(contrast_prefills_);
  e.numbers["contrast_forwards"] = static_cast<double>(contrast_forwards_);
  e.numbers["contrasted"] = static_cast<double>(calibrated_);  // passes whose logits changed
  e.numbers["noised_tensors"] = static_cast<double>(noised_tensors_);
  e.numbers["refollows"] = static_cast<double>(refollows_);  // forks of the contrast prompt
  e.numbers["outside_session"] = static_cast<double>(outside_session_);
}

}  // namespace glimpse::methods::feedback
