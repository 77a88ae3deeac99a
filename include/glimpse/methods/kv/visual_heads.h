#pragma once

// Visual-head scores (SparseMM's offline "Chase Visual Head", spec pruning_kv.md 1.1 stage A): a
// model reads pictures of known text aloud; at every generated token that names exactly one text
// region, each attention head whose top-1 key lies on that region's visual tokens scores
// 1 / |region|. The result is the file the `sparsemm` method loads ({"layer-head": [per-sample
// scores]}, over query heads). Official code: SparseMM visual_head/qwen_visual_head.py:
// {eval_single, decode, hit_score}.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse::model {
class Model;
class Processor;
}  // namespace glimpse::model

namespace glimpse::methods::kv {

// One text region of a picture: its text and the sequence indices of the visual tokens its box
// covers.
struct OcrChunk {
  std::string text;
  std::vector<std::int64_t> tokens;
};

// hit_score for one generated token: when `token` (its decoded text, stripped of spaces) is a
// substring of exactly one chunk, every head whose top-1 key (`argmax` [layers, heads] int64, key
// indices) is one of that chunk's tokens gains 1 / |tokens| in `scores` [layers, heads] (fp64).
// An empty token, or one found in no chunk or in several, adds nothing.
void add_visual_hits(const std::string& token, const std::vector<OcrChunk>& chunks,
                     const at::Tensor& argmax, at::Tensor& scores);

struct VisualHeadOptions {
  std::int64_t samples = 32;         // synthetic pictures (SparseMM: 1000 synthdog-en images)
  std::int64_t max_new_tokens = 64;  // greedy tokens per picture (SparseMM: 1024)
  std::uint64_t seed = 0;
  int width = 448, height = 448;  // picture size (Qwen: a multiple of 28, resized as it is)
};

// Scores every layer and query head of `model` on `options.samples` pictures of random words
// drawn with OpenCV's Hershey font (glimpse's stand-in for synthdog-en, whose images are not
// shipped), prompted "Provide all the OCR results of this image." as the official scoring is.
// Returns the score file's JSON text, keys in layer-major order.
std::string score_visual_heads(model::Model& model, const model::Processor& processor,
                               const VisualHeadOptions& options);

}  // namespace glimpse::methods::kv
