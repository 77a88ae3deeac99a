#pragma once

// Attention inspection: the attention of chosen query tokens onto every image and video frame,
// laid onto each medium's merged-patch grid through the token layout (DESIGN.md section 3; the
// spec's A[l,h,q,k] summed over the visual keys of one medium, as TAG and ViCrop read it:
// ../shared/specs/attention.md sections 0-2). It is a pipeline method ("attention_map") that asks
// for attention probes (blocks.{i}.attn) only at the chosen layers and rows, so the full maps are
// never materialised.
//
// Query selectors: "last" (the last prompt token), "token:I" and "span:A-B" (indices into the
// prompt's input_ids, B inclusive), "generated" (every generated token that is fed back during
// generation: decode steps 1..n-1; the last generated token never enters the model and has no
// row). The map is the mean over the selected query rows of the attention mass on each cell.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/model/token_layout.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::methods::inspect {

struct QuerySelector {
  enum class Kind { Last, Token, Span, Generated };
  Kind kind = Kind::Last;
  std::int64_t first = 0, last = 0;  // prompt indices of Token (first == last) and Span

  // "last", "token:I", "span:A-B" or "generated"; throws InputError naming `what` otherwise.
  static QuerySelector parse(const std::string& text, const std::string& what = "--query");
  std::string to_string() const;
  bool prefill() const { return kind != Kind::Generated; }
};

struct AttentionMapOptions {
  std::vector<std::int64_t> layers;  // decoder layers, increasing; empty: all
  std::vector<std::int64_t> heads;   // query heads, increasing; empty: all
  QuerySelector query;
};

// One image or video, with its attention maps.
struct MediaMap {
  model::Modality modality = model::Modality::Image;
  std::int64_t index = 0;            // image or video number within its kind (over the batch)
  std::int64_t sequence = 0;         // the batch row it belongs to
  std::int64_t t = 1, h = 0, w = 0;  // merged-patch grid
  // [layers, heads, t, h, w] fp32: mean over query rows of the attention probability of each
  // cell's token (0 for cells whose token was pruned away).
  at::Tensor maps;
  at::Tensor head_mean() const;  // [layers, t, h, w]
  std::string name() const;      // "image0", "video1"
};

class AttentionMap : public pipeline::Method {
 public:
  explicit AttentionMap(AttentionMapOptions options);
  // {"type": "attention_map", "layers": [..], "heads": [..], "query": "last"}
  static std::unique_ptr<pipeline::Method> create(const core::Config& params);

  std::string type() const override { return "attention_map"; }
  void report(pipeline::Report& report) const override;

  std::optional<model::ProbeRequest> probe(const model::ProbeSite& site) override;
  void on_block_pre(model::BlockPre& block) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;

  const AttentionMapOptions& options() const { return options_; }
  // The layers and heads of the maps' first two axes (the options', or all once a run began).
  const std::vector<std::int64_t>& layers() const { return layers_; }
  const std::vector<std::int64_t>& heads() const { return heads_; }
  // The maps of every image, then every video, of the last prompt. Throws Error when no probe
  // arrived (nothing ran, or "generated" with fewer than two new tokens).
  std::vector<MediaMap> maps() const;
  // Prompt indices of the query rows of the last run (for "generated": the indices the fed-back
  // tokens had in the sequence, prompt length and up).
  const std::vector<std::int64_t>& query_indices() const { return query_indices_; }
  // Probe rows received per layer (the divisor of the mean).
  std::int64_t rows_seen() const { return rows_; }

 private:
  std::int64_t slot(std::int64_t layer) const;  // position in layers_, -1 when not chosen
  void start(const model::BlockPre& block);

  AttentionMapOptions options_;
  std::vector<std::int64_t> layers_, heads_;
  std::int64_t num_layers_ = 0;
  // Media of the prompt (from the layout at layer 0): kind, index, grid.
  std::vector<MediaMap> media_;
  // Per layer slot, the prompt layout as the layer saw it at prefill (after any pruning).
  std::vector<model::TokenLayout> prefill_layouts_;
  model::TokenLayout current_;  // the layout of the layer being run at prefill
  // Per layer slot and medium: (key indices, flat cell t*h*w + ...) of its visual tokens.
  std::vector<std::vector<std::pair<at::Tensor, at::Tensor>>> key_cells_;
  std::vector<at::Tensor> sums_;  // per medium [layers, heads, t*h*w]
  std::vector<std::int64_t> rows_per_slot_;
  std::vector<std::int64_t> query_indices_;
  std::int64_t rows_ = 0, prompt_length_ = 0;
  std::int64_t decode_index_ = -1;  // sequence index of the token fed at this decode step
};

}  // namespace glimpse::methods::inspect
