#include "layers/decoder.h"

#include <cmath>

#include "glimpse/core/error.h"
#include "kernels/ops.h"
#include "layers/weights.h"

namespace glimpse::layers {

Decoder::Decoder(WeightLoader& w, const DecoderConfig& c) : config_(c) {
  shape_ = {c.num_layers, c.hidden_size,  c.intermediate_size,
            c.num_heads,  c.num_kv_heads, c.head_dim};
  const std::string& p = c.prefix;
  const std::int64_t h = c.hidden_size, q = c.num_heads * c.head_dim,
                     kv = c.num_kv_heads * c.head_dim;
  embed_tokens_ = w.get(p + "embed_tokens.weight", {c.vocab_size, h});
  layers_.reserve(c.num_layers);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    DecoderLayer layer;
    layer.input_layernorm = RMSNorm::load(w, l + "input_layernorm", h, c.rms_norm_eps);
    layer.post_attention_layernorm =
        RMSNorm::load(w, l + "post_attention_layernorm", h, c.rms_norm_eps);
    layer.q_proj = Linear::load(w, l + "self_attn.q_proj", h, q, c.qkv_bias);
    layer.k_proj = Linear::load(w, l + "self_attn.k_proj", h, kv, c.qkv_bias);
    layer.v_proj = Linear::load(w, l + "self_attn.v_proj", h, kv, c.qkv_bias);
    layer.o_proj = Linear::load(w, l + "self_attn.o_proj", q, h, c.o_bias);
    layer.gate_proj = Linear::load(w, l + "mlp.gate_proj", h, c.intermediate_size, c.mlp_bias);
    layer.up_proj = Linear::load(w, l + "mlp.up_proj", h, c.intermediate_size, c.mlp_bias);
    layer.down_proj = Linear::load(w, l + "mlp.down_proj", c.intermediate_size, h, c.mlp_bias);
    layers_.push_back(std::move(layer));
  }
  norm_ = RMSNorm::load(w, p + "norm", h, c.rms_norm_eps);
  // A checkpoint with tie_word_embeddings may still ship lm_head.weight; the reference then ties
  // (overwrites) it with the embeddings.
  lm_head_ = c.tie_word_embeddings ? embed_tokens_ : w.get(c.lm_head, {c.vocab_size, h});
}

at::Tensor Decoder::embed(const at::Tensor& input_ids) const {
  return at::embedding(embed_tokens_, input_ids);
}

at::Tensor Decoder::lm_head(const at::Tensor& hidden) const {
  // Decode: the 0.5 GB head of a 2B model through the GEMV kernel (at::linear reads it at a
  // fraction of the memory bandwidth for one row).
  if (kernels::gemv_applies(hidden, lm_head_))
    return kernels::gemv(hidden, {{&lm_head_, nullptr}})[0];
  return at::linear(hidden, lm_head_);
}

at::Tensor Decoder::attention(std::int64_t index, const at::Tensor& x, const at::Tensor& cos,
                              const at::Tensor& sin, const at::Tensor& mask, model::KVCache* cache,
                              at::Tensor* probs_out, const model::ProbeRequest* probe,
                              model::AttentionProbe* probe_out) const {
  const DecoderLayer& layer = layers_[index];
  const std::int64_t b = x.size(0), s = x.size(1), d = config_.head_dim;
  const std::int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads;
  at::Tensor q, k, v;
  if (kernels::gemv_applies(x, layer.q_proj.weight)) {
    // Decode: the three projections in one pass (one parallel region instead of three).
    auto qkv = kernels::gemv(x, {{&layer.q_proj.weight, &layer.q_proj.bias},
                                 {&layer.k_proj.weight, &layer.k_proj.bias},
                                 {&layer.v_proj.weight, &layer.v_proj.bias}});
    q = std::move(qkv[0]);
    k = std::move(qkv[1]);
    v = std::move(qkv[2]);
  } else {
    q = layer.q_proj(x);
    k = layer.k_proj(x);
    v = layer.v_proj(x);
  }
  q = q.view({b, s, heads, d});
  k = k.view({b, s, kv_heads, d});
  v = v.view({b, s, kv_heads, d});
  // apply_rotary_pos_emb (q * cos + rotate_half(q) * sin, cos/sin broadcast over heads) in place
  // on the fresh projections, with the reference's bf16 roundings.
  kernels::rope_(q, cos, sin);
  kernels::rope_(k, cos, sin);
  at::Tensor qh = q.transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);
  model::KVView kv;
  if (cache != nullptr) {
    kv = cache->append(index, kh, vh);
  } else {
    kv.keys = kh;
    kv.values = vh;
  }
  const std::int64_t t = kv.length();

  // GQA without repeat_kv: query heads sharing a KV head are stacked along the row axis, which
  // gives the same dot products as the reference's repeated keys. Probabilities are materialised
  // only when asked for. A prefix shared by forks is read in place by every sequence.
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor probs;
  const at::Tensor out =
      kv.shared.empty() ? layers::attention(qh, kv.keys, kv.values, scale, mask, /*causal=*/true,
                                            probs_out != nullptr ? &probs : nullptr)
                        : layers::attention_shared(qh, kv.shared, kv.keys, kv.values, scale, mask,
                                                   probs_out != nullptr ? &probs : nullptr);
  if (probs_out != nullptr) *probs_out = probs;
  if (probe != nullptr) {
    if (!kv.shared.empty())
      kh = cache->get(index).first;  // probes are rare: a copy is fine
    else
      kh = kv.keys;
    // The probed rows are recomputed from q and the cached keys, so that a method gets the rows
    // it asked for without the full map being kept.
    const std::int64_t rep = heads / kv_heads;
    std::vector<std::int64_t> rows =
        probe->last_row ? std::vector<std::int64_t>{s - 1} : probe->rows;
    for (const auto r : rows) {
      if (r < 0 || r >= s)
        throw InputError("attention probe: row " + std::to_string(r) + " outside [0, " +
                         std::to_string(s) + ")");
    }
    const at::Tensor idx = at::tensor(rows, at::TensorOptions().dtype(at::kLong));
    const std::int64_t n = static_cast<std::int64_t>(rows.size());
    const at::Tensor qr = qh.index_select(2, idx).reshape({b, kv_heads, rep * n, d});
    at::Tensor sr = at::matmul(qr, kh.transpose(2, 3)).view({b, heads, n, t}) /
                    std::sqrt(static_cast<double>(d));
    if (mask.defined()) sr = sr + mask.index_select(2, idx);
    probe_out->probs = at::softmax(sr, -1, at::kFloat);
    probe_out->rows = rows;
  }
  return layer.o_proj(out.view({b, s, heads * d}));
}

DecoderOutput Decoder::run(at::Tensor x, at::Tensor cos, at::Tensor sin, at::Tensor query_mask,
                           model::TokenLayout layout, model::DecodeState* state,
                           const DecoderRun& run) const {
  DecoderOutput out;
  model::KVCache* cache = state ? state->cache.get() : nullptr;
  if (state && state->key_masks.size() != layers_.size()) state->key_masks.resize(layers_.size());
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const auto li = static_cast<std::int64_t>(i);
    if (run.hooks) {
      model::BlockPre pre;
      pre.layer = li;
      pre.prefill = run.prefill;
      pre.shape = &shape_;
      pre.hidden = x;
      pre.layout = &layout;
      run.hooks->on_block_pre(pre);
      if (pre.hidden.sizes() != x.sizes()) {
        throw InputError("blocks." + std::to_string(i) +
                         ".pre: a hook changed the hidden-state shape");
      }
      x = pre.hidden;
      if (pre.keep.defined()) {
        // Keep rows of the hidden states, rotary tables, mask and layout together: positions stay
        // the original ones.
        const at::Tensor keep = pre.keep.to(at::kLong);
        x = x.index_select(1, keep);
        cos = cos.index_select(1, keep);
        sin = sin.index_select(1, keep);
        query_mask = query_mask.index_select(1, keep);
        if (layout.defined()) layout = layout.select(keep);
      }
    }
    if (run.output_hidden_states) out.hidden_states.push_back(x);
    const std::int64_t s = x.size(1);
    at::Tensor keys_mask = query_mask;
    if (state && state->key_masks[i].defined())
      keys_mask = at::cat({state->key_masks[i], query_mask}, 1);
    const at::Tensor mask = causal_mask(keys_mask, s, x.scalar_type());
    std::optional<model::ProbeRequest> probe;
    if (run.hooks) probe = run.hooks->probe(li, run.prefill);
    model::AttentionProbe probe_out;
    const DecoderLayer& layer = layers_[i];
    at::Tensor probs;
    x = x + attention(li, layer.input_layernorm(x), cos, sin, mask, cache,
                      run.output_attentions ? &probs : nullptr, probe ? &*probe : nullptr,
                      &probe_out);
    if (state) state->key_masks[i] = keys_mask;
    if (probe) {
      probe_out.layer = li;
      probe_out.prefill = run.prefill;
      run.hooks->on_attention_probe(probe_out);
    }
    if (run.output_attentions) out.attentions.push_back(probs);
    const at::Tensor h = layer.post_attention_layernorm(x);
    at::Tensor mlp = gated_mlp(layer.gate_proj, layer.up_proj, layer.down_proj, h, config_.act);
    if (run.hooks) {
      model::MlpSite site{li, run.prefill, h, mlp};
      run.hooks->on_mlp(site);
      if (!site.output.defined() || site.output.sizes() != mlp.sizes()) {
        throw InputError("blocks." + std::to_string(i) + ".mlp: a hook changed the output shape");
      }
      mlp = site.output;
    }
    x = x + mlp;
    if (run.hooks) run.hooks->on_block_post(li, x, run.prefill);
  }
  if (run.hooks && state) {
    model::KvSite kv{run.prefill, state, &shape_, &layout};
    run.hooks->on_kv(kv);
  }
  out.prenorm = x;
  out.last_hidden_state = norm_(x);
  if (run.output_hidden_states) out.hidden_states.push_back(out.last_hidden_state);
  out.layout = std::move(layout);
  return out;
}

model::ForwardOutput Decoder::forward(const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, const at::Tensor& attention_mask,
                                      model::TokenLayout layout,
                                      const model::ForwardOptions& options,
                                      model::DecodeState* state, bool prefill,
                                      model::ForwardOutput out) const {
  DecoderRun r;
  r.output_hidden_states = options.output_hidden_states;
  r.output_attentions = options.output_attentions;
  r.prefill = prefill;
  r.hooks = options.hooks;
  out.input_layout = layout;
  DecoderOutput dec = run(x, cos, sin, attention_mask, std::move(layout), state, r);
  const std::int64_t kept = dec.last_hidden_state.size(1);
  out.last_hidden = dec.last_hidden_state.narrow(1, kept - 1, 1);
  out.logits = lm_head(options.last_logits_only ? dec.last_hidden_state.narrow(1, kept - 1, 1)
                                                : dec.last_hidden_state);
  if (options.hooks) options.hooks->on_logits(out.logits, prefill);
  out.hidden_states = std::move(dec.hidden_states);
  out.attentions = std::move(dec.attentions);
  out.layout = std::move(dec.layout);
  if (options.output_hidden_states) out.last_layer_output_prenorm = dec.prenorm;
  if (state != nullptr) {
    state->attention_mask = state->attention_mask.defined()
                                ? at::cat({state->attention_mask, attention_mask}, 1)
                                : attention_mask;
  }
  return out;
}

at::Tensor causal_mask(const at::Tensor& attention_mask, std::int64_t new_tokens,
                       c10::ScalarType dtype) {
  const std::int64_t b = attention_mask.size(0), total = attention_mask.size(1);
  const std::int64_t past = total - new_tokens;
  const bool padded = !attention_mask.eq(1).all().item<bool>();
  if (!padded && new_tokens == 1) return at::Tensor();
  const auto opts = at::TensorOptions().dtype(at::kLong);
  // Query i (absolute position past+i) may see key j when j <= past+i.
  const at::Tensor qpos = at::arange(past, total, opts).view({new_tokens, 1});
  const at::Tensor kpos = at::arange(total, opts).view({1, total});
  at::Tensor blocked = kpos.gt(qpos).view({1, 1, new_tokens, total});
  blocked = blocked.logical_or(attention_mask.eq(0).view({b, 1, 1, total}));
  return at::zeros({b, 1, new_tokens, total}, at::TensorOptions().dtype(dtype))
      .masked_fill_(blocked, mask_min(dtype));
}

}  // namespace glimpse::layers
