#pragma once

// Hook sites of the forward pass (DESIGN.md section 4). A ForwardHooks object (usually a
// Pipeline) is passed in ForwardOptions; the engine calls it at the named sites and computes
// attention probes only for the layers, query rows and heads it asks for, leaving the main
// attention on its fast path.
//
//   vision.blocks.{i}.pre/.post  on_vision_block: read or replace the tower's hidden states
//   vision.blocks.{i}.attn       vision probes: CLS or mean attention per patch
//   vision.features  on_vision_features: the pre-projector features; keep or merge tokens
//   vision.out       on_vision_out: read, replace, keep or merge the features entering the LLM
//   blocks.{i}.pre   on_block_pre: read or replace the hidden states; keep a subset of tokens.
//                    Probes of stage BeforeBlock arrive just before it (layer i's weights on the
//                    sequence entering the layer, before anyone keeps a subset).
//   blocks.{i}.attn  on_attention: scale or mask the attention of chosen heads and rows (edits);
//                    probes of stage Attention: probed rows of q K^T / sqrt(d) (+ mask) after
//                    RoPE and the cache update, as scores or softmax probabilities, optionally
//                    reduced over rows and/or heads while they are computed
//   blocks.{i}.mlp   on_mlp: read the MLP input, read or replace its output
//   blocks.{i}.post  on_block_post: read or replace the layer output; stop the pass (an exit)
//   kv.after_prefill on_kv (prefill): read or shorten each layer's cache once per prefill
//   kv.decode_step   on_kv (decode): the same after every decode step (eviction)
//   logits           on_logits: rewrite the logits before sampling
//   inputs           on_inputs: the tokens and media of a Session's pass and the tokens before
//                    it, before the model runs (VCD mirrors them into its contrast session)
//
// Reducing visual tokens before the LLM (VisionZip, PruMerge+) goes through the keep of
// vision.features or vision.out, which drops the placeholder tokens with their layout rows and
// positions; blocks.0.pre's keep does the same inside the LLM.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/model/token_layout.h"

namespace glimpse::model {

struct DecodeState;
struct ForwardInputs;

// Sizes a method needs to estimate costs.
struct DecoderShape {
  std::int64_t num_layers = 0, hidden_size = 0, intermediate_size = 0;
  std::int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;

  // Multiply-add FLOPs (x2) of one decoder layer over `tokens` new tokens attending to `keys`
  // keys: the projections and MLP, plus QK^T and PV.
  double layer_flops(std::int64_t tokens, std::int64_t keys) const;
  // FLOPs of filling one skipped layer's K/V for `tokens` tokens after an exit: the k and v
  // projections of the exit hidden state.
  double kv_fill_flops(std::int64_t tokens) const;
};

// Query rows of a probe or an edit, as indices into the sequence a layer sees (the same for every
// sequence of a batch; prompts are left-padded, so the last rows line up).
struct RowSelection {
  std::int64_t last = 0;              // the last `last` rows (clipped to the sequence)
  std::vector<std::int64_t> indices;  // and these explicit rows
  bool all = false;                   // every row

  static RowSelection last_row() { return {1, {}, false}; }
  static RowSelection every_row() { return {0, {}, true}; }
  bool operator==(const RowSelection& o) const {
    return last == o.last && indices == o.indices && all == o.all;
  }
  // The rows of a sequence of `length`, increasing and unique. Throws InputError naming `site`
  // when an explicit row is outside [0, length).
  std::vector<std::int64_t> resolve(std::int64_t length, const char* site) const;
};

enum class ProbeStage : std::int8_t {
  Attention,    // blocks.{i}.attn: the layer's own attention, over the tokens it keeps
  BeforeBlock,  // just before blocks.{i}.pre: layer i's input norm, q/k projections and RoPE on
                // the sequence entering the layer (PyramidDrop's ranking at a stage boundary)
};

enum class ProbeValue : std::int8_t {
  Probs,   // softmax(q K^T / sqrt(d) + mask) in fp32: the rows of the eager attention
  Scores,  // q K^T / sqrt(d) + mask before the softmax, fp32 (SparseVLM's raters)
};

enum class ProbeReduce : std::int8_t { None, Sum, Mean };

// Where a probe is asked for.
struct ProbeSite {
  std::int64_t layer = 0;
  bool prefill = false;
  ProbeStage stage = ProbeStage::Attention;
};

struct ProbeRequest {
  RowSelection rows = RowSelection::last_row();
  std::vector<std::int64_t> heads;  // query heads, increasing; empty: all
  ProbeValue value = ProbeValue::Probs;
  // Reductions done while the rows are computed (in blocks of rows), so that nothing larger than
  // the result is materialised: H2O's accumulated attention, SnapKV's window, VisionZip's mean.
  ProbeReduce over_rows = ProbeReduce::None, over_heads = ProbeReduce::None;

  bool same_shape_as(const ProbeRequest& o) const {
    return value == o.value && over_rows == o.over_rows && over_heads == o.over_heads;
  }
};

struct AttentionProbe {
  std::int64_t layer = 0;
  bool prefill = false;
  ProbeStage stage = ProbeStage::Attention;
  ProbeValue value = ProbeValue::Probs;
  ProbeReduce over_rows = ProbeReduce::None, over_heads = ProbeReduce::None;
  // [B, heads, rows, keys] fp32; the heads axis is 1 when reduced over heads, the rows axis 1
  // when reduced over rows. Keys are the cached ones first, then this pass's `query_length`.
  at::Tensor probs;
  std::vector<std::int64_t> rows;   // the query rows (reduced over, when over_rows != None)
  std::vector<std::int64_t> heads;  // the query heads (likewise)
  std::int64_t query_length = 0;    // tokens of this pass at this layer
  std::size_t request = 0;          // which of the requests of ForwardHooks::probes it answers
};

// What positions the tokens a keep leaves have from that layer on.
enum class PositionPolicy : std::int8_t {
  // Their original ones (FastV's behaviour: later tokens and decode steps keep theirs).
  Keep,
  // glimpse's compaction rule (the official PyramidDrop and SparseVLM code renumber 1-D
  // positions with arange; M-RoPE has no official rule): every kept token's position streams
  // (all three for M-RoPE) move down by the number of tokens removed before it in the sequence,
  // and so do the positions of every later token at that layer and the layers after it,
  // decode steps included. For 1-D positions 0..S-1 this is the official renumbering.
  Compact,
};

struct BlockPre {
  std::int64_t layer = 0;
  bool prefill = false;  // true for the first (cached or uncached) pass over a prompt
  const DecoderShape* shape = nullptr;
  // [B, S, H], replaceable (same shape). With `keep` set, the engine selects the kept rows, unless
  // `hidden_kept` says that `hidden` already holds them [B, S', H].
  at::Tensor hidden;
  bool hidden_kept = false;
  const TokenLayout* layout = nullptr;
  // Set to keep only those rows from this layer on: increasing token indices [S'] for every
  // sequence, or [B, S'] per sequence, left-padded with -1 where one keeps fewer (the padded
  // slots become masked padding).
  at::Tensor keep;
  PositionPolicy positions = PositionPolicy::Keep;
};

// `keep` as int64 after checking it: [S'] increasing indices into `length` tokens, or, with
// `batch` > 0, also [batch, S'] with each row increasing after a left padding of -1 (a sequence
// that keeps fewer tokens); throws InputError naming `site` otherwise.
at::Tensor checked_keep(const at::Tensor& keep, std::int64_t length, const std::string& site,
                        std::int64_t batch = 0);

// blocks.{i}.attn: called before the layer's attention. Edits change the attention of chosen
// heads and query rows; the rows and heads no edit names stay on the fast path.
struct AttentionEdit {
  enum class Op : std::int8_t {
    ScaleOutput,  // multiply the heads' attention output (before o_proj) by `value`
    ScaleScores,  // multiply the scaled scores q.k/sqrt(d) of the chosen keys by `value`
    AddScores,    // add `value` to those scores (-inf masks the keys)
    SetScores,    // set those scores to `value` after the mask is added (visual-head `maskout`)
  };
  Op op = Op::ScaleOutput;
  double value = 1.0;
  std::vector<std::int64_t> heads;                // query heads; empty: all
  RowSelection rows = RowSelection::every_row();  // query rows of this pass
  at::Tensor keys;  // [B, keys] bool over the cached then current keys; undefined: all keys
};

struct AttentionSite {
  std::int64_t layer = 0;
  bool prefill = false;
  const DecoderShape* shape = nullptr;
  const TokenLayout* layout = nullptr;  // of this pass's tokens at this layer
  std::int64_t query_length = 0, key_length = 0;
  std::vector<AttentionEdit> edits;  // appended to by methods
};

// vision.out: the features of the vision tower (and projector) in placeholder order, one row per
// placeholder token, before they are scattered into the embeddings. Replaceable. Setting a keep
// (increasing row indices) drops the other placeholder tokens from the sequence together with
// their layout rows and positions (the kept ones keep their original positions unless
// `positions` is Compact); the embeds may then be either all rows or only the kept ones (a merge
// writes its merged rows there: a merged token sits at, and takes the position ids of, the row
// it was merged into). After a keep at vision.features the embeds hold only the tokens kept
// there, and a keep here indexes those rows.
struct VisionOut {
  at::Tensor image_embeds;              // [image tokens, H] or undefined
  at::Tensor video_embeds;              // [video tokens, H] or undefined
  const TokenLayout* layout = nullptr;  // of the prompt
  at::Tensor image_keep, video_keep;    // [kept] int64, increasing; undefined: all
  PositionPolicy positions = PositionPolicy::Keep;
};

// vision.blocks.{i}.pre and vision.blocks.{i}.post: the vision tower's hidden states before and
// after encoder block i. The tower runs each kind of media on its own (images, then videos), so
// a block's sites are called once per kind that the pass has. Replaceable with the same shape.
//   CLIP (LLaVA): [images, 1 + patches, C], the CLS token first.
//   Qwen2-VL / 2.5-VL: [patches, C] of the kind's media concatenated, in merge-block order (each
//   run of spatial_merge_size^2 rows is one LLM token); Qwen2.5-VL's blocks see them
//   window-permuted: group g of spatial_merge_size^2 rows is merge-block group window_order[g].
struct VisionBlock {
  std::int64_t layer = 0;
  bool post = false;  // false: vision.blocks.{i}.pre; true: vision.blocks.{i}.post
  Modality kind = Modality::Image;
  at::Tensor hidden;
  at::Tensor window_order;  // Qwen2.5-VL only: [rows / merge^2] int64, else undefined
};

// A probe inside the vision tower (vision.blocks.{i}.attn): the attention each patch receives in
// block i, from the CLS query (CLIP; VisionZip's and PruMerge's ranking) or averaged over the
// query patches that attend to it (Mean: its image, or under Qwen its frame pair or window; the
// substitute for towers without CLS, as EffiVLM's Qwen2-VL port of VisionZip does), in fp32,
// computed in blocks of query rows so that no [patches x patches] map is materialised. A tower
// that runs only up to the layer its model selects (LLaVA) probes only the blocks it runs.
struct VisionProbeRequest {
  enum class Query : std::int8_t { Cls, Mean };
  Query query = Query::Cls;
  bool mean_heads = true;  // average over heads, else one row per head
  // Also the block's keys averaged over heads (VisionZip's merge metric, visionzip/utils.py:
  // CLIPAttention_forward's raw_key_states.mean(1); Qwen: after the rotary embedding, as
  // EffiVLM's port takes them).
  bool keys = false;
  bool operator==(const VisionProbeRequest& o) const {
    return query == o.query && mean_heads == o.mean_heads && keys == o.keys;
  }
};

struct VisionAttentionProbe {
  std::int64_t layer = 0;
  Modality kind = Modality::Image;  // the media of this run of the tower
  VisionProbeRequest request;
  // Per medium of the kind, in input order: [heads or 1, patches] over its patches (CLIP: without
  // the CLS key; Qwen: in merge-block order).
  std::vector<at::Tensor> attention;
  // With request.keys: per medium [patches, head_dim] fp32, the keys averaged over heads (CLIP:
  // without CLS; Qwen: in merge-block order).
  std::vector<at::Tensor> keys;
  std::size_t index = 0;  // which request of ForwardHooks::vision_probes it answers
};

// vision.features (DESIGN's vision.merger): the tower's features before the projector, per
// medium, where VisionZip and PruMerge+ work officially. LLaVA: the selected CLIP layer(s) as
// the projector takes them, [features per image, C] (without CLS under the default strategy);
// Qwen: the patches entering the merger, [tokens * merge^2, C] in merge-block order. Replaceable.
// A method may keep a subset of each medium's LLM tokens (`keep`, increasing token indices) and
// give the features of only the kept tokens (a merge writes the merged features there); the
// projector then runs on what is left and the sequence shrinks as with VisionOut's keep.
struct VisionFeatures {
  std::vector<at::Tensor> features;  // per medium (images, then videos)
  std::vector<Modality> modality;    // per medium
  std::int64_t group = 1;            // feature rows per LLM token (Qwen: merge^2; LLaVA: 1)
  const TokenLayout* layout = nullptr;
  std::vector<at::Tensor> keep;  // per medium [kept tokens] int64; undefined or empty: all
  PositionPolicy positions = PositionPolicy::Keep;
};

// blocks.{i}.mlp: `input` is the post-attention-norm hidden state [B, S, H], `output` the MLP's
// result before the residual add (replaceable, same shape).
struct MlpSite {
  std::int64_t layer = 0;
  bool prefill = false;
  at::Tensor input;
  at::Tensor output;
};

// blocks.{i}.post: the layer's output [B, S, H] (the residual stream), replaceable with the same
// shape. Setting `exit` stops the pass after this layer: the final norm and LM head read this
// hidden state; with a cache, the layers skipped get the K/V of their k/v projections of it (as
// early-exit methods do), which ForwardOutput counts.
struct BlockPost {
  std::int64_t layer = 0;
  bool prefill = false;
  const DecoderShape* shape = nullptr;
  at::Tensor hidden;
  const TokenLayout* layout = nullptr;
  bool exit = false;
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

// What the hooks made the engine do in one pass (counted, so that tests can show that an unused
// site costs nothing).
struct HookStats {
  std::int64_t probes = 0;          // probe tensors computed
  std::int64_t probe_elements = 0;  // their elements
  std::int64_t edits = 0;           // attention edits applied
  std::int64_t exit_layer = -1;     // the layer after which the pass stopped; -1: none
  double exit_fill_flops = 0;       // K/V filled for the layers an exit skipped
};

class ForwardHooks {
 public:
  virtual ~ForwardHooks() = default;
  // False when nothing would happen at any site (an empty pipeline): the engine then runs the
  // plain forward.
  virtual bool active() const { return true; }
  // The probes wanted at a site (asked once per layer, stage and pass); each result comes back
  // through on_attention_probe with `request` set to its index here.
  virtual std::vector<ProbeRequest> probes(const ProbeSite& site) { return {}; }
  // The vision tower's probes wanted at block `layer` (asked once per block and pass).
  virtual std::vector<VisionProbeRequest> vision_probes(std::int64_t layer) { return {}; }
  virtual void on_vision_attention_probe(const VisionAttentionProbe& probe) {}
  virtual void on_vision_block(VisionBlock& block) {}
  virtual void on_vision_features(VisionFeatures& features) {}
  virtual void on_vision_out(VisionOut& vision) {}
  virtual void on_block_pre(BlockPre& block) {}
  virtual void on_attention(AttentionSite& site) {}
  virtual void on_attention_probe(const AttentionProbe& probe) {}
  virtual void on_mlp(MlpSite& mlp) {}
  virtual void on_block_post(BlockPost& block) {}
  virtual void on_kv(KvSite& kv) {}
  virtual void on_logits(at::Tensor& logits, bool prefill) {}
  // A Session's cached pass (prefill, append or decode step) is about to run on `inputs`
  // (checked), after the tokens `before` ([B, L] int64, Session::ids; undefined for the
  // session's first pass, the prefill). Forwards outside a Session (Model::forward) do not call
  // it.
  virtual void on_inputs(const ForwardInputs& inputs, const at::Tensor& before) {}
};

}  // namespace glimpse::model
