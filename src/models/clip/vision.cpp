#include "models/clip/vision.h"

#include <cmath>

#include "glimpse/core/error.h"
#include "layers/probe.h"
#include "layers/weights.h"
#include "model/inputs.h"

namespace glimpse::models::clip {

VisionConfig VisionConfig::from_config(const core::Config& c) {
  VisionConfig v;
  auto positive = [&c](const char* key, std::int64_t fallback) {
    const std::int64_t x = c.get_int(key, fallback);
    if (x <= 0) c.fail(key, "expected a positive integer, found " + std::to_string(x));
    return x;
  };
  v.hidden_size = positive("hidden_size", 768);
  v.intermediate_size = positive("intermediate_size", 3072);
  v.num_layers = positive("num_hidden_layers", 12);
  v.num_heads = positive("num_attention_heads", 12);
  v.num_channels = positive("num_channels", 3);
  v.image_size = positive("image_size", 224);
  v.patch_size = positive("patch_size", 32);
  v.layer_norm_eps = c.get_float("layer_norm_eps", 1e-5);
  v.act = layers::parse_activation(c.get_string("hidden_act", "quick_gelu"),
                                   c.source() + ": vision_config.hidden_act");
  if (v.hidden_size % v.num_heads != 0)
    c.fail("num_attention_heads", "does not divide hidden_size");
  if (v.image_size % v.patch_size != 0) c.fail("patch_size", "does not divide image_size");
  return v;
}

VisionTransformer::VisionTransformer(layers::WeightLoader& w, const VisionConfig& c,
                                     const std::string& p)
    : config_(c) {
  const std::int64_t h = c.hidden_size;
  class_embedding_ = w.get(p + "embeddings.class_embedding", {h});
  patch_embedding_ = w.get(p + "embeddings.patch_embedding.weight",
                           {h, c.num_channels, c.patch_size, c.patch_size});
  position_embedding_ = w.get(p + "embeddings.position_embedding.weight", {c.num_patches() + 1, h});
  pre_layrnorm_ = layers::LayerNorm::load(w, p + "pre_layrnorm", h, c.layer_norm_eps);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = p + "encoder.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.layer_norm1 = layers::LayerNorm::load(w, l + "layer_norm1", h, c.layer_norm_eps);
    layer.layer_norm2 = layers::LayerNorm::load(w, l + "layer_norm2", h, c.layer_norm_eps);
    layer.q_proj = layers::Linear::load(w, l + "self_attn.q_proj", h, h, true);
    layer.k_proj = layers::Linear::load(w, l + "self_attn.k_proj", h, h, true);
    layer.v_proj = layers::Linear::load(w, l + "self_attn.v_proj", h, h, true);
    layer.out_proj = layers::Linear::load(w, l + "self_attn.out_proj", h, h, true);
    layer.fc1 = layers::Linear::load(w, l + "mlp.fc1", h, c.intermediate_size, true);
    layer.fc2 = layers::Linear::load(w, l + "mlp.fc2", c.intermediate_size, h, true);
    layers_.push_back(std::move(layer));
  }
  post_layernorm_ = layers::LayerNorm::load(w, p + "post_layernorm", h, c.layer_norm_eps);
}

namespace {

// The vision probes `hooks` want at `layer` over q, k [images, heads, 1 + patches, d] (CLS first):
// the attention each patch receives from CLS, or averaged over the patch queries.
void deliver_probes(model::ForwardHooks& hooks, std::int64_t layer, const at::Tensor& q,
                    const at::Tensor& k) {
  const auto requests = hooks.vision_probes(layer);
  if (requests.empty()) return;
  const std::int64_t n = q.size(0), patches = q.size(2) - 1;
  model::ProbeRequest sum;
  sum.over_rows = model::ProbeReduce::Sum;
  at::Tensor cls, mean;  // [images, heads, patches], computed when asked
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const bool from_cls = requests[i].query == model::VisionProbeRequest::Query::Cls;
    at::Tensor& a = from_cls ? cls : mean;
    if (!a.defined()) {
      const at::Tensor rows = from_cls ? q.narrow(2, 0, 1) : q.narrow(2, 1, patches);
      a = layers::attention_probe(rows, k, at::Tensor(), {}, sum).squeeze(2).narrow(2, 1, patches);
      if (!from_cls) a = a / static_cast<double>(patches);
    }
    model::VisionAttentionProbe out;
    out.layer = layer;
    out.request = requests[i];
    out.index = i;
    for (std::int64_t m = 0; m < n; ++m)
      out.attention.push_back(requests[i].mean_heads ? a[m].mean(0, true) : a[m]);
    if (requests[i].keys) {
      const at::Tensor keys = k.narrow(2, 1, patches).to(at::kFloat).mean(1);  // [n, patches, d]
      for (std::int64_t m = 0; m < n; ++m) out.keys.push_back(keys[m]);
    }
    hooks.on_vision_attention_probe(out);
  }
}

}  // namespace

VisionOutput VisionTransformer::forward(const at::Tensor& pixel_values, std::int64_t run_layers,
                                        bool output_attentions, model::ForwardHooks* hooks) const {
  const VisionConfig& c = config_;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != c.num_channels ||
      pixel_values.size(2) != c.image_size || pixel_values.size(3) != c.image_size) {
    throw InputError("pixel_values: expected shape [images, " + std::to_string(c.num_channels) +
                     ", " + std::to_string(c.image_size) + ", " + std::to_string(c.image_size) +
                     "], found " + c10::str(pixel_values.sizes()));
  }
  model::check_finite(pixel_values, "pixel_values");
  const std::int64_t n = pixel_values.size(0), h = c.hidden_size, heads = c.num_heads,
                     d = h / heads;
  const auto dtype = patch_embedding_.scalar_type();
  // CLIPVisionEmbeddings: conv patches (row-major), CLS first, learned positions.
  const at::Tensor patches = at::conv2d(pixel_values.to(dtype), patch_embedding_, {}, c.patch_size)
                                 .flatten(2)
                                 .transpose(1, 2);
  at::Tensor x = at::cat({class_embedding_.view({1, 1, h}).expand({n, 1, h}), patches}, 1) +
                 position_embedding_.unsqueeze(0);
  x = pre_layrnorm_(x);
  VisionOutput out;
  out.hidden_states.push_back(x);
  const std::int64_t count = run_layers < 0 ? c.num_layers : std::min(run_layers, c.num_layers);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const std::int64_t s = x.size(1);
  auto block_site = [&](std::int64_t i, bool post) {
    model::VisionBlock site;
    site.layer = i;
    site.post = post;
    site.hidden = x;
    hooks->on_vision_block(site);
    if (!site.hidden.defined() || site.hidden.sizes() != x.sizes()) {
      throw InputError("vision.blocks." + std::to_string(i) + (post ? ".post" : ".pre") +
                       ": a hook changed the hidden-state shape " + c10::str(x.sizes()));
    }
    x = site.hidden.to(x.scalar_type());
  };
  for (std::int64_t i = 0; i < count; ++i) {
    const Layer& l = layers_[i];
    if (hooks) block_site(i, false);
    const at::Tensor hn = l.layer_norm1(x);
    auto split = [&](const layers::Linear& proj) {
      return proj(hn).view({n, s, heads, d}).transpose(1, 2);
    };
    const at::Tensor q = split(l.q_proj), k = split(l.k_proj), v = split(l.v_proj);
    if (hooks) deliver_probes(*hooks, i, q, k);
    at::Tensor probs;
    const at::Tensor attn = layers::attention(q, k, v, scale, at::Tensor(), /*causal=*/false,
                                              output_attentions ? &probs : nullptr);
    if (output_attentions) out.attentions.push_back(probs);
    x = x + l.out_proj(attn.view({n, s, h}));
    x = x + l.fc2(layers::activate(l.fc1(l.layer_norm2(x)), c.act));
    if (hooks) block_site(i, true);
    out.hidden_states.push_back(x);
  }
  if (count == c.num_layers) out.pooler_output = post_layernorm_(x.select(1, 0));
  return out;
}

}  // namespace glimpse::models::clip
