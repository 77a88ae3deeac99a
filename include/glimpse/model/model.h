#pragma once

// The model interface: a checkpoint folder loaded into a runnable model, with a forward pass that
// takes the tensors a Hugging Face processor produces (named as the reference forward arguments)
// and returns logits, hidden states and attention probabilities with the reference meanings.

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/core/config.h"
#include "glimpse/model/hooks.h"
#include "glimpse/model/kv_cache.h"
#include "glimpse/model/token_layout.h"

namespace glimpse::model {

// Where the weights live once loaded.
enum class WeightMemory {
  // Copied into anonymous memory advised for transparent huge pages: loading reads the files
  // once (seconds for a 2B model); decode, which reads every weight per token, ran about a
  // quarter faster than Mapped on the development VM (docs/PERFORMANCE.md).
  Resident,
  // Used in place from the checkpoint's file mapping where the stored dtype is the compute
  // dtype: loading is instant and the pages are shared with other processes.
  Mapped,
};

struct LoadOptions {
  // Compute dtype: at::kFloat (matches the reference fp32 goldens) or at::kBFloat16.
  c10::ScalarType dtype = c10::ScalarType::Float;
  WeightMemory weights = WeightMemory::Resident;
};

// Tensors named like the reference forward arguments. Undefined tensors are absent.
struct ForwardInputs {
  at::Tensor input_ids;       // [B, S] int64
  at::Tensor attention_mask;  // [B, S] (1 = token, 0 = padding); all ones when undefined
  at::Tensor pixel_values;    // images, model-specific layout (Qwen: [N, C*T*P*P])
  at::Tensor image_grid_thw;  // [n_images, 3] int64
  at::Tensor pixel_values_videos;
  at::Tensor video_grid_thw;      // [n_videos, 3] int64
  at::Tensor second_per_grid_ts;  // [n_videos] (Qwen2.5-VL)
  // The vision tower's output for these media, computed earlier (Model::embed_media): one row per
  // placeholder token, in placeholder order. When given, the tower is skipped and the pixel
  // tensors are not needed; the grids still are (positions).
  at::Tensor image_embeds;  // [image tokens, hidden]
  at::Tensor video_embeds;  // [video tokens, hidden]
};

// Vision features of a request's media (see ForwardInputs::image_embeds).
struct MediaEmbeds {
  at::Tensor image_embeds, video_embeds;
};

// One image of random pixels in the shapes a family's processor makes, for benchmarks and tests
// (Model::synthetic_image).
struct SyntheticImageRequest {
  std::int64_t width = 0, height = 0;  // a picture size; 0 x 0: use visual_tokens
  std::int64_t visual_tokens = -1;     // LLM tokens wanted; -1: the family's default
};

struct SyntheticImage {
  at::Tensor placeholder_ids;  // [n] int64: the ids one image takes in a prompt, markers included
  at::Tensor pixel_values;     // as the processor makes them
  at::Tensor image_grid_thw;   // [1, 3] where the family has grids, else undefined
  std::int64_t visual_tokens = 0, vision_patches = 0, width = 0, height = 0;
};

struct ForwardOptions {
  bool output_hidden_states = false;
  bool output_attentions = false;
  // Compute logits for the last position only (generation); otherwise for every position.
  bool last_logits_only = false;
  // Test-time methods at the hook sites (not owned); nullptr runs the plain forward.
  ForwardHooks* hooks = nullptr;
  // The autograd path: the same weights through plain differentiable libtorch ops (no fused
  // kernels, nothing in place), so that gradients reach the inputs (pixel_values, image_embeds)
  // and any weight the caller marks requires_grad. Equal to the fast path up to fp32 rounding;
  // slower. Forward passes without a cache only (Model::forward).
  bool autograd = false;
};

struct ForwardOutput {
  at::Tensor logits;  // [B, S or 1, V]
  // With output_hidden_states: L+1 tensors [B, S, H]. 0 is the input embeddings (vision features
  // scattered in), i is the output of layer i-1, L is after the final norm (the reference's
  // convention).
  std::vector<at::Tensor> hidden_states;
  at::Tensor last_layer_output_prenorm;  // with output_hidden_states
  std::vector<at::Tensor> attentions;    // with output_attentions: L tensors [B, heads, S, S_kv]
  at::Tensor position_ids;               // the positions used (Qwen: [3, B, S])
  at::Tensor rope_deltas;                // Qwen: [B, 1]
  // The layout of the tokens that reached the last layer (fewer than the prompt when a method
  // pruned); logits and the last hidden states follow it.
  TokenLayout layout;
  // The layout of the input tokens as the model built it, before any pruning.
  TokenLayout input_layout;
  // The last position's hidden state after the final norm [B, 1, H] (what the LM head read).
  at::Tensor last_hidden;
  // What the hooks made the pass do: probes computed, edits, an exit and its K/V fill.
  HookStats hook_stats;
};

// Per-request decoding state: the KV cache and what the model needs to continue. Three lengths
// are kept apart (DESIGN.md section 3): the logical position of each sequence (what RoPE sees
// next), the key slots of the prompt level (attention_mask, padding included), and each layer's
// cached keys (key_masks; layers differ once a method prunes).
struct DecodeState {
  std::unique_ptr<KVCache> cache;
  at::Tensor attention_mask;  // [B, slots] int64: every slot passed so far (0: padding)
  // Per layer, the mask of the keys it has cached [B, keys]: layers differ once a method prunes.
  std::vector<at::Tensor> key_masks;
  // [B] int64: the rope position of each sequence's next token (M-RoPE: the same on all three
  // streams for text), set at prefill and advanced by every pass.
  at::Tensor next_position;
  // Per layer, [B] int64 or undefined (0): how far a method's compaction (PositionPolicy::Compact)
  // moved the positions of every later token down at that layer; added to nothing else.
  std::vector<at::Tensor> position_shift;
  // Slots passed so far, padding included: the slot of the next token (the same for every row).
  std::int64_t past_length() const { return attention_mask.defined() ? attention_mask.size(1) : 0; }
  std::int64_t batch() const { return attention_mask.defined() ? attention_mask.size(0) : 0; }
  // Keeps the cached tokens `keep` (increasing indices) of one layer: its cache and its key mask
  // together (see KVCache::keep). The logical length does not change.
  void keep_keys(std::int64_t layer, const at::Tensor& keep);
  // Keeps per sequence and KV head its own cached columns, [B, H_kv, n] (KVCache::keep_heads):
  // never a masked (padding) column. The layer's key mask then covers the ragged part as valid.
  void keep_heads(std::int64_t layer, const at::Tensor& keep);
  // Cached entries each sequence and KV head attends to at a layer, [B, H_kv] int64: the cache's
  // slots (KVCache::head_lengths) less the masked ones (padding of stacked forks or batches,
  // evicted keys).
  at::Tensor kv_lengths(std::int64_t layer) const;
  // The run report's "kv" section as JSON text: {"bytes_full": a dense cache of every slot passed,
  // "bytes_held": what the cache allocates, "backend": "dense" or "ragged" (some layer kept per
  // head), "sequences": B, "kept": per layer, the entries each KV head attends to (summed over
  // the sequences)}.
  std::string kv_report() const;
  // The slot (prompt order: counted over every slot passed) of each entry a layer attends to, per
  // sequence and KV head: [B, H_kv, n] int64, each row increasing after a left padding of -1.
  // Entries of a ragged part carry the slot they were kept from; for dense columns the slot is
  // the column (exact unless a uniform keep, FastV or StreamingLLM, shortened the layer).
  at::Tensor kept_slots(std::int64_t layer) const;

  // `n` states that continue this one (batch 1) from a prefix they share without copying it
  // (KVCache::fork); this state reads the shared prefix too.
  std::vector<DecodeState> fork(std::int64_t n);
  // One state of the sequences of `states` (forks of one state, in order) for batched decoding:
  // their own slots are right-padded to the longest and masked. The inputs are left empty.
  static DecodeState stack(std::vector<DecodeState> states);
  // Sequence `row` alone (the shared prefix stays shared).
  DecodeState row(std::int64_t row) const;
};

class Model {
 public:
  virtual ~Model() = default;

  // The checkpoint's `architectures[0]` (e.g. "Qwen2VLForConditionalGeneration").
  virtual const std::string& architecture() const = 0;
  virtual const core::Config& config() const = 0;
  virtual c10::ScalarType dtype() const = 0;
  virtual std::int64_t num_layers() const = 0;
  virtual std::int64_t vocab_size() const = 0;
  // Positions the model was trained for (config max_position_embeddings): a Session refuses to
  // grow past it.
  virtual std::int64_t max_positions() const = 0;
  // Whether the model takes images (pixel_values, image_embeds) and videos.
  virtual bool accepts_images() const = 0;
  virtual bool accepts_videos() const = 0;

  // A full forward without a cache (the reference's use_cache=False).
  virtual ForwardOutput forward(const ForwardInputs& inputs, const ForwardOptions& options) = 0;

  // A cached forward: with an empty state it is the prefill (vision, positions, cache filled);
  // afterwards `inputs` hold only the new tokens (`attention_mask`, when given, their mask, with
  // padding on the left only) and may bring new media, placed after the cache with the positions
  // the reference's get_rope_index gives the whole conversation. The state is updated in place.
  virtual ForwardOutput forward_cached(const ForwardInputs& inputs, const ForwardOptions& options,
                                       DecodeState& state) = 0;

  // An empty decoding state with this model's cache layout for `batch` sequences.
  virtual DecodeState new_state(std::int64_t batch) const = 0;
  // The language-model head over hidden states [..., H] of the residual stream: the final norm
  // when `apply_norm`, then lm_head (a logit lens; the reference's hidden_states[L] is normed).
  virtual at::Tensor logits_from_hidden(const at::Tensor& hidden, bool apply_norm) const = 0;
  // The decoder's sizes (layers, hidden, heads) for methods that estimate costs.
  virtual const DecoderShape& decoder_shape() const = 0;
  // A loaded weight by its state-dict name as the model binds it (e.g.
  // "model.layers.0.mlp.down_proj.weight"), in the compute dtype; the model's own tensor, which
  // callers must not write. Throws InputError naming the tensor when the model has no such weight.
  at::Tensor weight(const std::string& name) const;
  // Every name weight() knows, sorted.
  std::vector<std::string> weight_names() const;
  // Runs the vision tower (and projector) on the pixel tensors of `inputs`, so that later
  // requests on the same media can pass the result as image_embeds / video_embeds (rounds of a
  // feedback loop, benchmarks of the language model alone). Text-only models return nothing.
  virtual MediaEmbeds embed_media(const ForwardInputs& inputs) { return {}; }
  // An image of random pixels this model takes (see SyntheticImageRequest); nothing for
  // text-only models and for zero visual tokens. Throws InputError naming the option
  // (--visual-tokens, --image-size) the family cannot honour.
  virtual std::optional<SyntheticImage> synthetic_image(
      const SyntheticImageRequest& request) const {
    return std::nullopt;
  }

 protected:
  // What weight() reads: every tensor the model bound, by state-dict name (set by the loaders).
  std::map<std::string, at::Tensor> weights_;
};

// The defined tensors of `inputs`, named like the reference forward arguments (what
// read_forward_inputs reads back).
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const ForwardInputs& inputs);

// Reads forward arguments named as the reference's (input_ids, attention_mask, pixel_values,
// image_grid_thw, pixel_values_videos, video_grid_thw, second_per_grid_ts) from a safetensors
// file; input_ids is required, the rest optional; other tensors are ignored with a warning.
ForwardInputs read_forward_inputs(const std::string& path);

// Loads a Hugging Face checkpoint folder (config.json + safetensors), choosing the implementation
// by `architectures[0]`, else `model_type`, through the ModelRegistry.
std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options = {});

}  // namespace glimpse::model
