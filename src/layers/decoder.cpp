#include "layers/decoder.h"

#include <cmath>
#include <tuple>

#include "glimpse/core/error.h"
#include "kernels/ops.h"
#include "layers/cached_attention.h"
#include "layers/probe.h"
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

std::pair<at::Tensor, at::Tensor> Decoder::full_kv(std::int64_t layer, const model::KVView& kv,
                                                   const model::KVCache* cache) const {
  // Probes and edits are rare: a copy is fine. A ragged layer has no such form (get refuses it).
  if (!kv.shared.empty() || kv.ragged) return cache->get(layer);
  return {kv.keys, kv.values};
}

void Decoder::probe(const model::ProbeSite& site, const std::vector<model::ProbeRequest>& requests,
                    const at::Tensor& q, const at::Tensor& keys, const at::Tensor& mask,
                    model::ForwardHooks& hooks, model::HookStats& stats,
                    const QueryRows& query_rows) const {
  const std::int64_t s = q.size(2);
  for (std::size_t j = 0; j < requests.size(); ++j) {
    const model::ProbeRequest& request = requests[j];
    model::AttentionProbe out;
    out.layer = site.layer;
    out.prefill = site.prefill;
    out.stage = site.stage;
    out.value = request.value;
    out.over_rows = request.over_rows;
    out.over_heads = request.over_heads;
    out.rows = request.rows.resolve(s, "attention probe");
    out.heads = request.heads;
    if (out.heads.empty()) {
      for (std::int64_t h = 0; h < config_.num_heads; ++h) out.heads.push_back(h);
    }
    out.query_length = s;
    out.request = j;
    const at::Tensor idx = at::tensor(out.rows, at::TensorOptions().dtype(at::kLong));
    const at::Tensor qr = query_rows ? query_rows(idx) : q.index_select(2, idx);
    out.probs = attention_probe(qr, keys, mask.defined() ? mask.index_select(2, idx) : mask,
                                request.heads, request);
    ++stats.probes;
    stats.probe_elements += out.probs.numel();
    hooks.on_attention_probe(out);
  }
}

at::Tensor Decoder::attention(std::int64_t index, const at::Tensor& x, const at::Tensor& cos,
                              const at::Tensor& sin, const at::Tensor& mask, model::KVCache* cache,
                              at::Tensor* probs_out, const LayerHooks& hooks) const {
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
  q = kernels::rope(q, cos, sin);
  k = kernels::rope(k, cos, sin);
  at::Tensor qh = q.transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);
  model::KVView kv;
  if (cache != nullptr) {
    kv = cache->append(index, kh, vh);
  } else {
    kv.keys = kh;
    kv.values = vh;
  }

  // GQA without repeat_kv: query heads sharing a KV head are stacked along the row axis, which
  // gives the same dot products as the reference's repeated keys. Probabilities are materialised
  // only when asked for. A prefix shared by forks is read in place by every sequence.
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor probs;
  at::Tensor out =
      cached_attention(qh, kv, scale, mask, probs_out != nullptr ? &probs : nullptr, index);
  if (probs_out != nullptr) *probs_out = probs;
  if (hooks.edits != nullptr && !hooks.edits->empty()) {
    const auto [keys, values] = full_kv(index, kv, cache);
    const std::string site = "blocks." + std::to_string(index) + ".attn";
    apply_attention_edits(out, qh, keys, values, mask, *hooks.edits, site.c_str());
    hooks.stats->edits += static_cast<std::int64_t>(hooks.edits->size());
  }
  if (hooks.probes != nullptr && !hooks.probes->empty()) {
    // The probed rows are recomputed from q and the cached keys, so that a method gets the rows
    // it asked for without the full map being kept.
    if (kv.ragged) {
      // Each head reads its own entries: dense keys with a per-head mask over the holes (the
      // probe gives them probability 0).
      const auto [keys, holes] = padded_keys(kv, b);
      const at::Tensor hole_rows = holes.repeat_interleave(heads / kv_heads, 1).unsqueeze(2);
      at::Tensor m = at::zeros(hole_rows.sizes(), qh.options())
                         .masked_fill_(hole_rows, mask_min(qh.scalar_type()));
      if (mask.defined()) m = m + mask;  // [B, Hq, S, columns]
      probe(hooks.site, *hooks.probes, qh, keys, m, *hooks.hooks, *hooks.stats, {});
    } else {
      const at::Tensor keys = full_kv(index, kv, cache).first;
      probe(hooks.site, *hooks.probes, qh, keys, mask, *hooks.hooks, *hooks.stats, {});
    }
  }
  return layer.o_proj(out.view({b, s, heads * d}));
}

void Decoder::probe_before_block(std::int64_t index, const at::Tensor& x, const at::Tensor& cos,
                                 const at::Tensor& sin, const at::Tensor& mask,
                                 const model::KVCache* cache,
                                 const std::vector<model::ProbeRequest>& requests,
                                 const model::ProbeSite& site, model::ForwardHooks& hooks,
                                 model::HookStats& stats) const {
  // The layer's own input norm, k projection and RoPE over the sequence entering it (PyramidDrop
  // modeling_llama_pdrop.py:pdrop_rank_drop), queries only for the rows asked for.
  const DecoderLayer& layer = layers_[index];
  const std::int64_t b = x.size(0), s = x.size(1), d = config_.head_dim;
  const at::Tensor h = layer.input_layernorm(x);
  at::Tensor k = layer.k_proj(h).view({b, s, config_.num_kv_heads, d});
  kernels::rope_(k, cos, sin);
  at::Tensor keys = k.transpose(1, 2);
  if (cache != nullptr && cache->length(index) > 0)
    keys = at::cat({cache->get(index).first, keys}, 2);
  const QueryRows rows = [&](const at::Tensor& idx) {
    const std::int64_t n = idx.numel();
    at::Tensor q = layer.q_proj(h.index_select(1, idx)).view({b, n, config_.num_heads, d});
    kernels::rope_(q, cos.index_select(1, idx), sin.index_select(1, idx));
    return q.transpose(1, 2);
  };
  // q is only used for its shape: [B, Hq, S, D] (no data is read).
  const at::Tensor shape_only = at::empty({b, config_.num_heads, s, 0}, x.options());
  probe(site, requests, shape_only, keys, mask, hooks, stats, rows);
}

DecoderOutput Decoder::run(at::Tensor x, at::Tensor cos, at::Tensor sin, at::Tensor query_mask,
                           model::TokenLayout layout, model::DecodeState* state,
                           const DecoderRun& run) const {
  DecoderOutput out;
  model::KVCache* cache = state ? state->cache.get() : nullptr;
  if (state && state->key_masks.size() != layers_.size()) state->key_masks.resize(layers_.size());
  model::ForwardHooks* hooks = run.hooks != nullptr && run.hooks->active() ? run.hooks : nullptr;
  auto keys_mask_of = [&](std::size_t i) {
    return state && state->key_masks[i].defined() ? at::cat({state->key_masks[i], query_mask}, 1)
                                                  : query_mask;
  };
  // Positions moved by compaction (PositionPolicy::Compact): the shifts of earlier passes per
  // layer, which of them the rotary tables reflect now, and what this pass adds.
  const bool shifted = state != nullptr && !state->position_shift.empty();
  at::Tensor applied_shift;
  std::vector<at::Tensor> added_shift;
  auto reposition = [&](const char* why) {
    if (!run.rope || !layout.defined()) {
      throw UnsupportedError(std::string(why) +
                             ": this model gives no token layout or rotary function");
    }
    std::tie(cos, sin) = run.rope(layout.positions);
  };
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const auto li = static_cast<std::int64_t>(i);
    auto site = [i] { return "blocks." + std::to_string(i); };  // for errors
    if (shifted) {
      const at::Tensor want =
          i < state->position_shift.size() ? state->position_shift[i] : at::Tensor();
      const bool same = want.defined() == applied_shift.defined() &&
                        (!want.defined() || at::equal(want, applied_shift));
      if (!same) {
        const auto b = x.size(0);
        at::Tensor delta = want.defined() ? want : at::zeros({b}, at::kLong);
        if (applied_shift.defined()) delta = delta - applied_shift;
        layout.positions = layout.positions - delta.view({1, b, 1});
        reposition("position compaction");
        applied_shift = want;
      }
    }
    if (hooks) {
      const model::ProbeSite before{li, run.prefill, model::ProbeStage::BeforeBlock};
      const auto requests = hooks->probes(before);
      if (!requests.empty()) {
        const at::Tensor mask = causal_mask(keys_mask_of(i), x.size(1), x.scalar_type());
        probe_before_block(li, x, cos, sin, mask, cache, requests, before, *hooks, out.stats);
      }
      model::BlockPre pre;
      pre.layer = li;
      pre.prefill = run.prefill;
      pre.shape = &shape_;
      pre.hidden = x;
      pre.layout = &layout;
      hooks->on_block_pre(pre);
      const at::Tensor keep =
          pre.keep.defined() ? model::checked_keep(pre.keep, x.size(1), site() + ".pre", x.size(0))
                             : at::Tensor();
      const bool already_kept = keep.defined() && pre.hidden_kept;
      if (!pre.hidden.defined() || pre.hidden.dim() != 3 || pre.hidden.size(0) != x.size(0) ||
          pre.hidden.size(2) != x.size(2) ||
          pre.hidden.size(1) != (already_kept ? keep.size(-1) : x.size(1))) {
        throw InputError(site() + ".pre: a hook changed the hidden-state shape to " +
                         c10::str(pre.hidden.sizes()) + " (expected " + c10::str(x.sizes()) +
                         (already_kept ? " with " + std::to_string(keep.size(-1)) + " kept rows"
                                       : std::string()) +
                         ")");
      }
      x = pre.hidden;
      const at::Tensor real = query_mask;  // before the keep
      if (keep.defined()) {
        // Keep rows of the hidden states, rotary tables, mask and layout together: positions stay
        // the original ones. Slots a sequence leaves empty (-1) become masked padding.
        if (!already_kept) x = model::select_tokens(x, keep);
        cos = model::select_tokens(cos, keep);
        sin = model::select_tokens(sin, keep);
        query_mask = model::select_tokens(query_mask, keep);
        if (keep.dim() == 2) query_mask = query_mask.masked_fill(keep.lt(0), 0);
        if (layout.defined()) layout = layout.select(keep);
        if (pre.positions == model::PositionPolicy::Compact) {
          const at::Tensor removed = compact_positions(keep, real, layout);
          reposition((site() + ".pre: positions: compact").c_str());
          if (state != nullptr) {
            if (added_shift.empty()) added_shift.resize(layers_.size());
            for (std::size_t j = i; j < layers_.size(); ++j)
              added_shift[j] = added_shift[j].defined() ? added_shift[j] + removed : removed;
          }
        }
      }
    }
    if (run.output_hidden_states) out.hidden_states.push_back(x);
    const std::int64_t s = x.size(1);
    const at::Tensor keys_mask = keys_mask_of(i);
    const at::Tensor mask = causal_mask(keys_mask, s, x.scalar_type());
    LayerHooks lh;
    std::vector<model::ProbeRequest> requests;
    model::AttentionSite attn;
    if (hooks) {
      lh.site = {li, run.prefill, model::ProbeStage::Attention};
      requests = hooks->probes(lh.site);
      attn.layer = li;
      attn.prefill = run.prefill;
      attn.shape = &shape_;
      attn.layout = &layout;
      attn.query_length = s;
      attn.key_length = keys_mask.size(1);
      hooks->on_attention(attn);
      lh.hooks = hooks;
      lh.probes = &requests;
      lh.edits = &attn.edits;
      lh.stats = &out.stats;
    }
    const DecoderLayer& layer = layers_[i];
    at::Tensor probs;
    x = x + attention(li, layer.input_layernorm(x), cos, sin, mask, cache,
                      run.output_attentions ? &probs : nullptr, lh);
    if (state) state->key_masks[i] = keys_mask;
    if (run.output_attentions) out.attentions.push_back(probs);
    const at::Tensor h = layer.post_attention_layernorm(x);
    at::Tensor mlp = gated_mlp(layer.gate_proj, layer.up_proj, layer.down_proj, h, config_.act);
    if (hooks) {
      model::MlpSite mlp_site{li, run.prefill, h, mlp};
      hooks->on_mlp(mlp_site);
      if (!mlp_site.output.defined() || mlp_site.output.sizes() != mlp.sizes()) {
        throw InputError(site() + ".mlp: a hook changed the output shape");
      }
      mlp = mlp_site.output;
    }
    x = x + mlp;
    if (hooks) {
      model::BlockPost post{li, run.prefill, &shape_, x, &layout, false};
      hooks->on_block_post(post);
      if (!post.hidden.defined() || post.hidden.sizes() != x.sizes()) {
        throw InputError(site() + ".post: a hook changed the hidden-state shape");
      }
      x = post.hidden;
      if (post.exit && i + 1 < layers_.size()) {
        exit_after(li, x, cos, sin, query_mask, state, run, out);
        break;
      }
    }
  }
  if (!added_shift.empty()) {
    // Later passes start from these shifts at each layer.
    state->position_shift.resize(layers_.size());
    for (std::size_t j = 0; j < layers_.size(); ++j) {
      at::Tensor& p = state->position_shift[j];
      if (added_shift[j].defined()) p = p.defined() ? p + added_shift[j] : added_shift[j];
    }
  }
  if (hooks && state) {
    model::KvSite kv{run.prefill, state, &shape_, &layout};
    hooks->on_kv(kv);
  }
  out.prenorm = x;
  out.last_hidden_state = norm_(x);
  if (run.output_hidden_states) out.hidden_states.push_back(out.last_hidden_state);
  out.layout = std::move(layout);
  return out;
}

void Decoder::exit_after(std::int64_t exit_layer, const at::Tensor& x, const at::Tensor& cos,
                         const at::Tensor& sin, const at::Tensor& query_mask,
                         model::DecodeState* state, const DecoderRun& run,
                         DecoderOutput& out) const {
  out.stats.exit_layer = exit_layer;
  const std::int64_t b = x.size(0), s = x.size(1), d = config_.head_dim;
  for (auto j = static_cast<std::size_t>(exit_layer + 1); j < layers_.size(); ++j) {
    // The residual stream stays the exit's for the layers skipped.
    if (run.output_hidden_states) out.hidden_states.push_back(x);
    if (run.output_attentions) out.attentions.emplace_back();
    if (state == nullptr) continue;
    // Later tokens attend to these layers' keys: fill them from the layer's own k/v projections
    // of the exit hidden state (the state propagation of early-exit decoders).
    const DecoderLayer& layer = layers_[j];
    const at::Tensor h = layer.input_layernorm(x);
    at::Tensor k = layer.k_proj(h).view({b, s, config_.num_kv_heads, d});
    const at::Tensor v = layer.v_proj(h).view({b, s, config_.num_kv_heads, d});
    kernels::rope_(k, cos, sin);
    state->cache->append(static_cast<std::int64_t>(j), k.transpose(1, 2), v.transpose(1, 2));
    state->key_masks[j] =
        state->key_masks[j].defined() ? at::cat({state->key_masks[j], query_mask}, 1) : query_mask;
    out.stats.exit_fill_flops += shape_.kv_fill_flops(b * s);
  }
}

model::ForwardOutput Decoder::forward(const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, const at::Tensor& attention_mask,
                                      model::TokenLayout layout,
                                      const model::ForwardOptions& options,
                                      model::DecodeState* state, bool prefill,
                                      model::ForwardOutput out, const RopeFn& rope) const {
  DecoderRun r;
  r.output_hidden_states = options.output_hidden_states;
  r.output_attentions = options.output_attentions;
  r.prefill = prefill;
  r.hooks = options.hooks;
  r.rope = rope;
  out.input_layout = layout;
  DecoderOutput dec = run(x, cos, sin, attention_mask, std::move(layout), state, r);
  const std::int64_t kept = dec.last_hidden_state.size(1);
  out.last_hidden = dec.last_hidden_state.narrow(1, kept - 1, 1);
  out.hook_stats = dec.stats;
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

at::Tensor compact_positions(const at::Tensor& keep, const at::Tensor& query_mask,
                             model::TokenLayout& layout) {
  const std::int64_t b = query_mask.size(0);
  const at::Tensor k = keep.dim() == 1 ? keep.unsqueeze(0).expand({b, -1}) : keep;
  const at::Tensor valid = k.ge(0), idx = k.clamp_min(0);
  // Tokens (not padding) before each one, in the sequence before the keep and among the kept.
  const at::Tensor real = query_mask.to(at::kLong);
  const at::Tensor real_before = real.cumsum(1) - real;
  const at::Tensor kept_real = real.gather(1, idx) * valid;
  const at::Tensor kept_before = kept_real.cumsum(1) - kept_real;
  const at::Tensor removed_before =
      (real_before.gather(1, idx) - kept_before).masked_fill(valid.logical_not(), 0);
  layout.positions = layout.positions - removed_before.unsqueeze(0);
  return real.sum(1) - kept_real.sum(1);
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
