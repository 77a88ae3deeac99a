#pragma once

// The Llama-family pre-norm decoder shared by Qwen2 and Llama (transformers
// modeling_qwen2.py / modeling_llama.py: DecoderLayer, Attention, MLP). Rotary embeddings are
// computed by the caller (M-RoPE for Qwen2-VL, 1-D RoPE otherwise) and passed in as cos/sin.

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/model/hooks.h"
#include "glimpse/model/model.h"
#include "layers/modules.h"

namespace glimpse::layers {

struct DecoderConfig {
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  std::int64_t max_position_embeddings = 2048;
  bool qkv_bias = false;  // Qwen2: true; Llama: attention_bias (false)
  bool o_bias = false;    // Llama: attention_bias; Qwen2: never
  bool mlp_bias = false;  // Llama: mlp_bias
  Activation act = Activation::Silu;
  bool tie_word_embeddings = false;
  std::string prefix = "model.";  // state-dict prefix of embed_tokens, layers, norm
  std::string lm_head = "lm_head.weight";
};

struct DecoderLayer {
  RMSNorm input_layernorm, post_attention_layernorm;
  Linear q_proj, k_proj, v_proj, o_proj;
  Linear gate_proj, up_proj, down_proj;
};

// cos, sin [B, S, head_dim] in the compute dtype for positions [P, B, S] (P = 3 for M-RoPE, 1
// otherwise): how a family's rotary tables are made, for a method's compaction of positions.
using RopeFn = std::function<std::pair<at::Tensor, at::Tensor>(const at::Tensor& positions)>;

struct DecoderRun {
  bool output_hidden_states = false;
  bool output_attentions = false;
  bool prefill = true;
  model::ForwardHooks* hooks = nullptr;
  RopeFn rope;  // needed only when a method compacts positions
};

struct DecoderOutput {
  at::Tensor last_hidden_state;           // after the final norm [B, S, H]
  at::Tensor prenorm;                     // output of the last layer, before the norm
  std::vector<at::Tensor> hidden_states;  // L+1 with output_hidden_states
  std::vector<at::Tensor> attentions;     // L with output_attentions
  model::TokenLayout layout;              // after any pruning
  model::HookStats stats;
};

class Decoder {
 public:
  Decoder(WeightLoader& weights, const DecoderConfig& config);

  const DecoderConfig& config() const { return config_; }
  at::Tensor embed(const at::Tensor& input_ids) const;
  at::Tensor lm_head(const at::Tensor& hidden) const;
  at::Tensor final_norm(const at::Tensor& hidden) const { return norm_(hidden); }

  // x: [B, S, H] embeddings; cos, sin: [B, S, head_dim] in the compute dtype; query_mask:
  // [B, S] int64 (1 = token, 0 = padding) of the new tokens; layout: their token layout.
  // With a state, keys are appended to its cache and per-layer key masks; without, attention
  // covers the new tokens only. Hooks may prune tokens at blocks.{i}.pre.
  DecoderOutput run(at::Tensor x, at::Tensor cos, at::Tensor sin, at::Tensor query_mask,
                    model::TokenLayout layout, model::DecodeState* state,
                    const DecoderRun& run) const;

  // The rest of a family's forward once it has the embeddings, rotary tables and layout: run(),
  // the logits (of the last row only with last_logits_only), the hooks' logits site, the
  // outputs asked for, and the state's attention mask. `out` comes with its position fields set.
  model::ForwardOutput forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                               const at::Tensor& attention_mask, model::TokenLayout layout,
                               const model::ForwardOptions& options, model::DecodeState* state,
                               bool prefill, model::ForwardOutput out,
                               const RopeFn& rope = {}) const;

  const model::DecoderShape& shape() const { return shape_; }

 private:
  // What a layer's attention does for the hooks: probes to compute and edits to apply.
  struct LayerHooks {
    model::ForwardHooks* hooks = nullptr;
    model::ProbeSite site;
    const std::vector<model::ProbeRequest>* probes = nullptr;
    const std::vector<model::AttentionEdit>* edits = nullptr;
    model::HookStats* stats = nullptr;
  };
  // The queries [B, Hq, n, D] of the rows `idx` (when the probe computes them itself).
  using QueryRows = std::function<at::Tensor(const at::Tensor& idx)>;

  at::Tensor attention(std::int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin, const at::Tensor& mask, model::KVCache* cache,
                       at::Tensor* probs_out, const LayerHooks& hooks) const;
  // Keys and values [B, Hkv, T, D] of a layer after its append (the shared prefix copied in).
  std::pair<at::Tensor, at::Tensor> full_kv(std::int64_t layer, const model::KVView& kv,
                                            const model::KVCache* cache) const;
  // Computes `requests` over queries q [B, Hq, S, D] (or query_rows) and delivers them.
  void probe(const model::ProbeSite& site, const std::vector<model::ProbeRequest>& requests,
             const at::Tensor& q, const at::Tensor& keys, const at::Tensor& mask,
             model::ForwardHooks& hooks, model::HookStats& stats,
             const QueryRows& query_rows) const;
  // Probes of stage BeforeBlock: layer `layer`'s weights on the sequence entering it.
  void probe_before_block(std::int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                          const at::Tensor& sin, const at::Tensor& mask,
                          const model::KVCache* cache,
                          const std::vector<model::ProbeRequest>& requests,
                          const model::ProbeSite& site, model::ForwardHooks& hooks,
                          model::HookStats& stats) const;
  // An exit after `exit_layer`: the skipped layers' outputs and, with a cache, their K/V.
  void exit_after(std::int64_t exit_layer, const at::Tensor& x, const at::Tensor& cos,
                  const at::Tensor& sin, const at::Tensor& query_mask, model::DecodeState* state,
                  const DecoderRun& run, DecoderOutput& out) const;

  DecoderConfig config_;
  model::DecoderShape shape_;
  at::Tensor embed_tokens_;  // [V, H]
  std::vector<DecoderLayer> layers_;
  RMSNorm norm_;
  at::Tensor lm_head_;  // [V, H]; the embedding matrix when tied
};

// glimpse's compaction rule (model::PositionPolicy::Compact) after a keep (as BlockPre takes it)
// of a sequence with `query_mask` [B, S] (before the keep): every kept token's positions in
// `layout` (already selected) move down by the number of tokens, padding not counted, removed
// before it. Returns the tokens removed per sequence [B], the shift of every later token.
at::Tensor compact_positions(const at::Tensor& keep, const at::Tensor& query_mask,
                             model::TokenLayout& layout);

// Additive attention mask [B, 1, S, past+S] for `attention_mask` [B, past+S] (1 = keep), causal
// within the new S tokens, with the reference's finfo.min for masked slots. Undefined when nothing
// needs masking (no padding and a single new token).
at::Tensor causal_mask(const at::Tensor& attention_mask, std::int64_t new_tokens,
                       c10::ScalarType dtype);

}  // namespace glimpse::layers
