#pragma once

// Small building blocks shared by the model families, each following the reference numerics
// (transformers modeling files; see ../shared/specs/models.md section 1).

#include <ATen/ATen.h>

#include <string>

namespace glimpse::layers {

class WeightLoader;

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined

  static Linear load(WeightLoader& w, const std::string& prefix, std::int64_t in, std::int64_t out,
                     bool bias);
  at::Tensor operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }
};

// LlamaRMSNorm / Qwen2RMSNorm: normalise in fp32, cast back to the input dtype, then scale.
struct RMSNorm {
  at::Tensor weight;
  double eps = 1e-6;

  static RMSNorm load(WeightLoader& w, const std::string& prefix, std::int64_t dim, double eps);
  at::Tensor operator()(const at::Tensor& x) const;
};

struct LayerNorm {
  at::Tensor weight, bias;
  double eps = 1e-6;

  static LayerNorm load(WeightLoader& w, const std::string& prefix, std::int64_t dim, double eps);
  at::Tensor operator()(const at::Tensor& x) const {
    return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
  }
};

// Activations by their config names: silu, gelu (exact erf), gelu_pytorch_tanh, quick_gelu, relu.
// Throws UnsupportedError naming `where` for others.
enum class Activation { Silu, Gelu, GeluTanh, QuickGelu, Relu };
Activation parse_activation(const std::string& name, const std::string& where);
at::Tensor activate(const at::Tensor& x, Activation act);

// cat(-x2, x1) over the last dimension (NeoX-style half split).
at::Tensor rotate_half(const at::Tensor& x);

// The most negative finite value of a floating dtype: the additive mask value of the reference.
double mask_min(c10::ScalarType dtype);

}  // namespace glimpse::layers
