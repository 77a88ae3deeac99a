#include "models/qwen2_vl/vision.h"

#include <cmath>

#include "glimpse/core/error.h"
#include "kernels/ops.h"
#include "layers/probe.h"
#include "layers/weights.h"
#include "models/qwen2_5_vl/vision_utils.h"

namespace glimpse::models::qwen2_vl {

using layers::Linear;

VisionTransformer::VisionTransformer(layers::WeightLoader& w, const VisionConfig& c,
                                     const std::string& p)
    : config_(c) {
  const std::int64_t e = c.embed_dim;
  // PatchEmbed is a Conv3d whose kernel equals its stride: one GEMM over flattened patches in the
  // same (C, T, ph, pw) order.
  patch_weight_ = w.get(p + "patch_embed.proj.weight",
                        {e, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size});
  for (std::int64_t i = 0; i < c.depth; ++i) {
    const std::string b = p + "blocks." + std::to_string(i) + ".";
    Block block;
    if (c.is_2_5) {
      block.rms1 = layers::RMSNorm::load(w, b + "norm1", e, 1e-6);
      block.rms2 = layers::RMSNorm::load(w, b + "norm2", e, 1e-6);
      block.gate_proj = Linear::load(w, b + "mlp.gate_proj", e, c.mlp_dim, true);
      block.up_proj = Linear::load(w, b + "mlp.up_proj", e, c.mlp_dim, true);
      block.down_proj = Linear::load(w, b + "mlp.down_proj", c.mlp_dim, e, true);
    } else {
      block.ln1 = layers::LayerNorm::load(w, b + "norm1", e, 1e-6);
      block.ln2 = layers::LayerNorm::load(w, b + "norm2", e, 1e-6);
      block.fc1 = Linear::load(w, b + "mlp.fc1", e, c.mlp_dim, true);
      block.fc2 = Linear::load(w, b + "mlp.fc2", c.mlp_dim, e, true);
    }
    block.qkv = Linear::load(w, b + "attn.qkv", e, 3 * e, true);
    block.proj = Linear::load(w, b + "attn.proj", e, e, true);
    blocks_.push_back(std::move(block));
  }
  const std::int64_t merged = e * c.spatial_merge_size * c.spatial_merge_size;
  if (c.is_2_5) {
    merger_rms_ = layers::RMSNorm::load(w, p + "merger.ln_q", e, 1e-6);
  } else {
    merger_ln_ = layers::LayerNorm::load(w, p + "merger.ln_q", e, 1e-6);
  }
  merger_fc1_ = Linear::load(w, p + "merger.mlp.0", merged, merged, true);
  merger_fc2_ = Linear::load(w, p + "merger.mlp.2", merged, c.out_dim, true);
}

at::Tensor VisionTransformer::norm(const Block& b, const at::Tensor& x, int which) const {
  if (config_.is_2_5) return which == 1 ? b.rms1(x) : b.rms2(x);
  return which == 1 ? b.ln1(x) : b.ln2(x);
}

at::Tensor VisionTransformer::mlp(const Block& b, const at::Tensor& x) const {
  if (config_.is_2_5) {
    return b.down_proj(layers::activate(b.gate_proj(x), config_.act) * b.up_proj(x));
  }
  return b.fc2(layers::activate(b.fc1(x), config_.act));
}

at::Tensor VisionTransformer::rotary_angles(
    const std::vector<std::array<std::int64_t, 3>>& grids) const {
  // VisionRotaryEmbedding(head_dim / 2): inv_freq = 1 / 10000^(arange(0, dim, 2) / dim) in fp32.
  const std::int64_t dim = config_.head_dim() / 2;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor inv_freq =
      1.0 / at::pow(10000.0, at::arange(0, dim, 2, f32) / static_cast<double>(dim));
  const std::int64_t m = config_.spatial_merge_size;
  std::vector<at::Tensor> rows, cols;
  for (const auto& [t, h, w] : grids) {
    // Positions in merge-block order: (h/m, m, w/m, m) permuted to (h/m, w/m, m, m).
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    const at::Tensor hpos = at::arange(h, i64).unsqueeze(1).expand({h, w});
    const at::Tensor wpos = at::arange(w, i64).unsqueeze(0).expand({h, w});
    auto order = [&](const at::Tensor& p) {
      return p.reshape({h / m, m, w / m, m}).permute({0, 2, 1, 3}).flatten().repeat({t});
    };
    rows.push_back(order(hpos));
    cols.push_back(order(wpos));
  }
  const at::Tensor r = at::cat(rows).to(at::kFloat).unsqueeze(1) * inv_freq;
  const at::Tensor c = at::cat(cols).to(at::kFloat).unsqueeze(1) * inv_freq;
  return at::cat({r, c}, 1);
}

at::Tensor VisionTransformer::attention(const Block& b, const at::Tensor& x, const at::Tensor& cos,
                                        const at::Tensor& sin,
                                        const std::vector<std::int64_t>& cu_seqlens,
                                        const Probe* probe) const {
  const std::int64_t n = x.size(0), heads = config_.num_heads, d = config_.head_dim();
  const at::Tensor qkv = b.qkv(x).view({1, n, 3 * heads, d});
  // apply_rotary_pos_emb_vision on q and k (the first 2 * heads rows of each patch) in place:
  // rotated in fp32 against the fp32 tables, rounded once.
  const at::Tensor qk =
      kernels::rope(qkv.narrow(2, 0, 2 * heads), cos.unsqueeze(0), sin.unsqueeze(0));
  const at::Tensor q = qk.narrow(2, 0, heads).transpose(1, 2);  // [1, heads, n, d]
  const at::Tensor k = qk.narrow(2, heads, heads).transpose(1, 2);
  const at::Tensor v = qkv.narrow(2, 2 * heads, heads).transpose(1, 2);
  if (probe != nullptr) deliver_probes(*probe, q, k, cu_seqlens);

  // Attention is block-diagonal over cu_seqlens; the reference's additive finfo.min mask gives
  // exactly zero weight outside the blocks, so each block is computed on its own.
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<at::Tensor> outs;
  outs.reserve(cu_seqlens.size());
  for (std::size_t i = 1; i < cu_seqlens.size(); ++i) {
    const std::int64_t start = cu_seqlens[i - 1], len = cu_seqlens[i] - start;
    if (len == 0) continue;
    outs.push_back(layers::attention(q.narrow(2, start, len), k.narrow(2, start, len),
                                     v.narrow(2, start, len), scale, at::Tensor(),
                                     /*causal=*/false)
                       .view({len, heads * d}));
  }
  return b.proj(outs.size() == 1 ? outs[0] : at::cat(outs, 0));
}

void VisionTransformer::deliver_probes(const Probe& probe, const at::Tensor& q, const at::Tensor& k,
                                       const std::vector<std::int64_t>& cu_seqlens) const {
  const auto requests = probe.hooks->vision_probes(probe.layer);
  if (requests.empty()) return;
  const std::string site = "vision.blocks." + std::to_string(probe.layer) + ".attn";
  for (const auto& r : requests) {
    if (r.query == model::VisionProbeRequest::Query::Cls) {
      throw UnsupportedError(site +
                             ": the Qwen2-VL vision tower has no CLS token (probe with "
                             "Query::Mean)");
    }
  }
  // The attention each patch receives, averaged over the queries of its attention block (image,
  // frame pair or window), in fp32 row blocks: no [patches x patches] map is kept.
  const std::int64_t heads = q.size(1), n = q.size(2);
  at::Tensor received = at::zeros({heads, n}, at::TensorOptions().dtype(at::kFloat));
  model::ProbeRequest sum;
  sum.over_rows = model::ProbeReduce::Sum;
  for (std::size_t i = 1; i < cu_seqlens.size(); ++i) {
    const std::int64_t start = cu_seqlens[i - 1], len = cu_seqlens[i] - start;
    if (len == 0) continue;
    const at::Tensor r = layers::attention_probe(q.narrow(2, start, len), k.narrow(2, start, len),
                                                 at::Tensor(), {}, sum);
    received.narrow(1, start, len).copy_(r.view({heads, len}) / static_cast<double>(len));
  }
  bool want_keys = false;
  for (const auto& r : requests) want_keys = want_keys || r.keys;
  at::Tensor keys = want_keys ? k[0].to(at::kFloat).mean(0) : at::Tensor();  // [n, d]
  if (probe.window_index.defined()) {
    // Back from window order to merge-block order.
    const std::int64_t unit = config_.spatial_merge_size * config_.spatial_merge_size;
    const at::Tensor rows = (probe.window_index.view({-1, 1}) * unit +
                             at::arange(unit, probe.window_index.options()).view({1, -1}))
                                .view({-1});
    received = at::zeros_like(received).index_copy_(1, rows, received);
    if (want_keys) keys = at::zeros_like(keys).index_copy_(0, rows, keys);
  }
  for (std::size_t i = 0; i < requests.size(); ++i) {
    model::VisionAttentionProbe out;
    out.layer = probe.layer;
    out.kind = probe.kind;
    out.request = requests[i];
    out.index = i;
    std::int64_t offset = 0;
    for (const std::int64_t p : *probe.patches) {
      const at::Tensor a = received.narrow(1, offset, p);
      out.attention.push_back(requests[i].mean_heads ? a.mean(0, true) : a);
      if (requests[i].keys) out.keys.push_back(keys.narrow(0, offset, p));
      offset += p;
    }
    probe.hooks->on_vision_attention_probe(out);
  }
}

at::Tensor VisionTransformer::forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw,
                                      VisionTrace* trace) const {
  return merge(encode(pixel_values, grid_thw, trace, nullptr, model::Modality::Image));
}

VisionTransformer::Encoding VisionTransformer::encode(const at::Tensor& pixel_values,
                                                      const at::Tensor& grid_thw,
                                                      VisionTrace* trace,
                                                      model::ForwardHooks* hooks,
                                                      model::Modality kind) const {
  std::vector<std::array<std::int64_t, 3>> grids;
  Encoding e;
  const at::Tensor g = grid_thw.to(at::kLong).contiguous();
  const auto* gp = g.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < g.size(0); ++i) {
    grids.push_back({gp[3 * i], gp[3 * i + 1], gp[3 * i + 2]});
    e.patches.push_back(gp[3 * i] * gp[3 * i + 1] * gp[3 * i + 2]);
  }

  const auto dtype = patch_weight_.scalar_type();
  // Reshaped here, not at load: a view made before a caller marks the weight requires_grad
  // (training) would not carry its gradient.
  at::Tensor x =
      at::linear(pixel_values.to(dtype), patch_weight_.reshape({patch_weight_.size(0), -1}));
  if (trace) trace->patch_embed = x;

  at::Tensor angles = rotary_angles(grids);
  // Per image, and per pair of frames of a video: cu_seqlens of the full-attention blocks.
  std::vector<std::int64_t> cu_seqlens{0};
  for (const auto& [t, h, w] : grids) {
    for (std::int64_t f = 0; f < t; ++f) cu_seqlens.push_back(cu_seqlens.back() + h * w);
  }
  std::vector<std::int64_t> cu_windows;
  const std::int64_t unit = config_.spatial_merge_size * config_.spatial_merge_size;
  const std::int64_t n = x.size(0);
  if (config_.is_2_5) {
    const std::int64_t window =
        config_.window_size / config_.spatial_merge_size / config_.patch_size;
    auto wi = qwen2_5_vl::get_window_index(grids, config_.spatial_merge_size, window);
    cu_windows = std::move(wi.cu_window_seqlens);
    e.window_index = at::tensor(wi.window_index, at::TensorOptions().dtype(at::kLong));
    // Move 2x2 groups of patches (and their rotary angles) into window order.
    x = x.view({n / unit, unit, -1}).index_select(0, e.window_index).reshape({n, -1});
    angles = angles.view({n / unit, unit, -1}).index_select(0, e.window_index).reshape({n, -1});
  }
  const at::Tensor emb = at::cat({angles, angles}, 1);
  const at::Tensor cos = emb.cos(), sin = emb.sin();

  auto block_site = [&](std::int64_t i, bool post) {
    model::VisionBlock site;
    site.layer = i;
    site.post = post;
    site.kind = kind;
    site.hidden = x;
    site.window_order = e.window_index;
    hooks->on_vision_block(site);
    if (!site.hidden.defined() || site.hidden.sizes() != x.sizes()) {
      throw InputError("vision.blocks." + std::to_string(i) + (post ? ".post" : ".pre") +
                       ": a hook changed the hidden-state shape " + c10::str(x.sizes()));
    }
    x = site.hidden.to(x.scalar_type());
  };
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    const auto li = static_cast<std::int64_t>(i);
    bool full = true;
    if (config_.is_2_5) {
      full = std::find(config_.fullatt_block_indexes.begin(), config_.fullatt_block_indexes.end(),
                       li) != config_.fullatt_block_indexes.end();
    }
    Probe probe{hooks, li, kind, &e.patches, e.window_index};
    if (hooks) block_site(li, false);
    x = x + attention(b, norm(b, x, 1), cos, sin, full ? cu_seqlens : cu_windows,
                      hooks ? &probe : nullptr);
    x = x + mlp(b, norm(b, x, 2));
    if (hooks) block_site(li, true);
    if (trace) trace->blocks.push_back(x);
  }
  e.hidden = x;
  return e;
}

at::Tensor VisionTransformer::merge_rows(const at::Tensor& x) const {
  // PatchMerger: norm each patch, concatenate each 2x2 group, then Linear-GELU-Linear.
  const std::int64_t unit = config_.spatial_merge_size * config_.spatial_merge_size;
  at::Tensor m = config_.is_2_5 ? merger_rms_(x) : merger_ln_(x);
  m = m.view({x.size(0) / unit, -1});
  return merger_fc2_(at::gelu(merger_fc1_(m)));
}

at::Tensor VisionTransformer::merge(const Encoding& e) const {
  at::Tensor m = merge_rows(e.hidden);
  if (e.window_index.defined()) m = m.index_select(0, at::argsort(e.window_index));
  return m;
}

at::Tensor VisionTransformer::merge_block_order(const Encoding& e) const {
  if (!e.window_index.defined()) return e.hidden;
  const std::int64_t unit = config_.spatial_merge_size * config_.spatial_merge_size;
  const std::int64_t n = e.hidden.size(0);
  return e.hidden.view({n / unit, unit, -1})
      .index_select(0, at::argsort(e.window_index))
      .reshape({n, -1});
}

}  // namespace glimpse::models::qwen2_vl
