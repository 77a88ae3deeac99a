#pragma once

// Hook sites of the forward pass (DESIGN.md section 4). A ForwardHooks object (usually a
// Pipeline) is passed in ForwardOptions; the engine calls it at the named sites and computes
// attention probes only for the layers and query rows it asks for, leaving the main attention on
// its fast path.
//
//   vision.out       on_vision_out: read or replace the vision features before they enter the LLM
//   blocks.{i}.pre   on_block_pre: read or replace the hidden states; keep a subset of tokens
//   blocks.{i}.attn  on_attention_probe: probed rows softmax(q_rows K^T / sqrt(d)) after RoPE
//   blocks.{i}.mlp   on_mlp: read the MLP input, read or replace its output
//   blocks.{i}.post  on_block_post: read the layer output
//   kv.after_prefill on_kv (prefill): read or shorten each layer's cache once per prefill
//   kv.decode_step   on_kv (decode): the same after every decode step (eviction)
//   logits           on_logits: rewrite the logits before sampling
//
// Reducing visual tokens before the LLM (VisionZip-style) goes through blocks.0.pre's `keep`,
// which keeps the hidden states, positions and layout in step; vision.out keeps shapes.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "glimpse/model/token_layout.h"

namespace glimpse::model {

struct DecodeState;

// Sizes a method needs to estimate costs.
struct DecoderShape {
  std::int64_t num_layers = 0, hidden_size = 0, intermediate_size = 0;
  std::int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;

  // Multiply-add FLOPs (x2) of one decoder layer over `tokens` new tokens attending to `keys`
  // keys: the projections and MLP, plus QK^T and PV.
  double layer_flops(std::int64_t tokens, std::int64_t keys) const;
};

struct BlockPre {
  std::int64_t layer = 0;
  bool prefill = false;  // true for the first (cached or uncached) pass over a prompt
  const DecoderShape* shape = nullptr;
  at::Tensor hidden;  // [B, S, H], replaceable (same shape)
  const TokenLayout* layout = nullptr;
  // Set to increasing token indices [S'] to keep only those rows from this layer on.
  at::Tensor keep;
};

// vision.out: the features of the vision tower (and projector) in placeholder order, one row per
// placeholder token, before they are scattered into the embeddings. Replaceable, same shapes.
struct VisionOut {
  at::Tensor image_embeds;              // [image tokens, H] or undefined
  at::Tensor video_embeds;              // [video tokens, H] or undefined
  const TokenLayout* layout = nullptr;  // of the prompt
};

// blocks.{i}.mlp: `input` is the post-attention-norm hidden state [B, S, H], `output` the MLP's
// result before the residual add (replaceable, same shape).
struct MlpSite {
  std::int64_t layer = 0;
  bool prefill = false;
  at::Tensor input;
  at::Tensor output;
};

// kv.after_prefill (prefill = true) and kv.decode_step: after a cached pass. A method may read
// the keys and values of each layer (DecodeState::cache) and keep a subset with
// DecodeState::keep_keys, which shortens that layer's cache and key mask together.
struct KvSite {
  bool prefill = false;
  DecodeState* state = nullptr;
  const DecoderShape* shape = nullptr;
  const TokenLayout* layout = nullptr;  // of this pass's tokens at the last layer
};

struct ProbeRequest {
  // Query rows of the probe: the last token, or explicit indices of the current sequence.
  bool last_row = true;
  std::vector<std::int64_t> rows;
};

struct AttentionProbe {
  std::int64_t layer = 0;
  bool prefill = false;
  at::Tensor probs;  // [B, heads, rows, keys] fp32
  std::vector<std::int64_t> rows;
};

class ForwardHooks {
 public:
  virtual ~ForwardHooks() = default;
  // The probe wanted at layer `layer` in this pass, if any (asked once per layer and pass).
  virtual std::optional<ProbeRequest> probe(std::int64_t layer, bool prefill) {
    return std::nullopt;
  }
  virtual void on_vision_out(VisionOut& vision) {}
  virtual void on_block_pre(BlockPre& block) {}
  virtual void on_attention_probe(const AttentionProbe& probe) {}
  virtual void on_mlp(MlpSite& mlp) {}
  virtual void on_block_post(std::int64_t layer, const at::Tensor& hidden, bool prefill) {}
  virtual void on_kv(KvSite& kv) {}
  virtual void on_logits(at::Tensor& logits, bool prefill) {}
};

}  // namespace glimpse::model
