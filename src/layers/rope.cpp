#include "layers/rope.h"

#include <cmath>

#include "glimpse/core/error.h"

namespace glimpse::layers {

RopeConfig RopeConfig::from_config(const core::Config& c, std::int64_t head_dim) {
  RopeConfig r;
  r.dim = head_dim;
  r.theta = c.get_float("rope_theta", 10000.0);
  r.max_position_embeddings = c.get_int("max_position_embeddings", 2048);
  const auto scaling = c.find_section("rope_scaling");
  if (!scaling) return r;
  r.type = scaling->get_string("rope_type", scaling->get_string("type", "default"));
  if (r.type == "default") return r;
  if (r.type != "linear" && r.type != "dynamic" && r.type != "llama3") {
    scaling->fail("rope_type", "unsupported rope type '" + r.type +
                                   "' (known: default, linear, dynamic, llama3)");
  }
  r.factor = scaling->get_float("factor");
  if (!(r.factor >= 1.0)) scaling->fail("factor", "expected a number >= 1");
  if (r.type == "llama3") {
    r.low_freq_factor = scaling->get_float("low_freq_factor");
    r.high_freq_factor = scaling->get_float("high_freq_factor");
    r.original_max_position_embeddings = scaling->get_int("original_max_position_embeddings");
    if (!(r.high_freq_factor > r.low_freq_factor)) {
      scaling->fail("high_freq_factor", "expected a value above low_freq_factor");
    }
  }
  return r;
}

at::Tensor rope_inv_freq(const RopeConfig& r, std::int64_t seq_len) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  double base = r.theta;
  if (r.type == "dynamic" && seq_len > r.max_position_embeddings) {
    // _compute_dynamic_ntk_parameters
    const double d = static_cast<double>(r.dim);
    base = r.theta *
           std::pow(r.factor * seq_len / r.max_position_embeddings - (r.factor - 1), d / (d - 2));
  }
  at::Tensor inv = 1.0 / at::pow(base, at::arange(0, r.dim, 2, f32) / static_cast<double>(r.dim));
  if (r.type == "linear") return inv / r.factor;
  if (r.type == "llama3") {
    // _compute_llama3_parameters: long wavelengths scaled by 1/factor, short kept, the band
    // between blended smoothly.
    const double old_len = static_cast<double>(r.original_max_position_embeddings);
    const double low_wavelen = old_len / r.low_freq_factor;
    const double high_wavelen = old_len / r.high_freq_factor;
    const at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / r.factor, inv);
    const at::Tensor smooth =
        (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    const at::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    const at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    return at::where(medium, smoothed, scaled);
  }
  return inv;
}

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const RopeConfig& r, const at::Tensor& position_ids,
                                               c10::ScalarType dtype) {
  const std::int64_t seq_len =
      position_ids.numel() ? position_ids.max().item<std::int64_t>() + 1 : 0;
  const at::Tensor inv = rope_inv_freq(r, seq_len);
  const at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv;
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

}  // namespace glimpse::layers
