#include "layers/modules.h"

#include <limits>

#include "glimpse/core/error.h"
#include "layers/weights.h"

namespace glimpse::layers {

Linear Linear::load(WeightLoader& w, const std::string& prefix, std::int64_t in, std::int64_t out,
                    bool bias) {
  Linear l;
  l.weight = w.get(prefix + ".weight", {out, in});
  if (bias) l.bias = w.get(prefix + ".bias", {out});
  return l;
}

RMSNorm RMSNorm::load(WeightLoader& w, const std::string& prefix, std::int64_t dim, double eps) {
  return RMSNorm{w.get(prefix + ".weight", {dim}), eps};
}

at::Tensor RMSNorm::operator()(const at::Tensor& x) const {
  // transformers Qwen2RMSNorm.forward: variance in fp32, then weight * x.to(input_dtype).
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (h * at::rsqrt(variance + eps)).to(x.scalar_type());
}

LayerNorm LayerNorm::load(WeightLoader& w, const std::string& prefix, std::int64_t dim,
                          double eps) {
  return LayerNorm{w.get(prefix + ".weight", {dim}), w.get(prefix + ".bias", {dim}), eps};
}

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "relu") return Activation::Relu;
  throw UnsupportedError(where + ": activation '" + name +
                         "' (known: silu, gelu, gelu_pytorch_tanh, quick_gelu, relu)");
}

at::Tensor activate(const at::Tensor& x, Activation act) {
  switch (act) {
    case Activation::Silu:
      return at::silu(x);
    case Activation::Gelu:
      return at::gelu(x);
    case Activation::GeluTanh:
      return at::gelu(x, "tanh");
    case Activation::QuickGelu:
      return x * at::sigmoid(1.702 * x);
    case Activation::Relu:
      return at::relu(x);
  }
  return x;
}

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

double mask_min(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    case at::kBFloat16:
      return -3.3895313892515355e38;  // torch.finfo(torch.bfloat16).min
    case at::kHalf:
      return -65504.0;
    default:
      return std::numeric_limits<float>::lowest();
  }
}

}  // namespace glimpse::layers
