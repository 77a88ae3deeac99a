#include "glimpse/methods/kv/visual_heads.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::methods::kv {
namespace {

// Words of the synthetic pictures: short, distinct, lowercase.
constexpr const char* kWords[] = {"apple", "river", "stone", "cloud", "seven", "north", "green",
                                  "table", "light", "paper", "horse", "water", "music", "bread",
                                  "chair", "plant", "smile", "ocean", "tiger", "money", "sugar",
                                  "train", "house", "dream", "glass", "night", "storm", "piano"};

struct Placed {
  std::string text;
  int x0, y0, x1, y1;  // box in pixels, x1 and y1 exclusive
};

// A white picture with `count` words in dark ink at random places that do not overlap.
vision::Image draw_words(std::mt19937_64& rng, int width, int height, int count,
                         std::vector<Placed>& placed) {
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  auto uniform = [&](int lo, int hi) {
    return lo >= hi ? lo : std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  for (int i = 0, tries = 0; i < count && tries < 200; ++tries) {
    const std::string word = kWords[uniform(0, std::size(kWords) - 1)];
    const double scale = 0.9 + 0.1 * uniform(0, 6);
    int baseline = 0;
    const cv::Size t = cv::getTextSize(word, cv::FONT_HERSHEY_SIMPLEX, scale, 2, &baseline);
    const int x0 = uniform(4, width - t.width - 4),
              y0 = uniform(4, height - t.height - baseline - 4);
    const Placed p{word, x0, y0, x0 + t.width, y0 + t.height + baseline};
    bool overlaps = false;
    for (const auto& q : placed) {
      overlaps =
          overlaps || (p.x0 < q.x1 + 8 && q.x0 < p.x1 + 8 && p.y0 < q.y1 + 8 && q.y0 < p.y1 + 8);
    }
    if (overlaps) continue;
    cv::putText(img, word, cv::Point(x0, y0 + t.height), cv::FONT_HERSHEY_SIMPLEX, scale,
                cv::Scalar(20, 20, 20), 2, cv::LINE_AA);
    placed.push_back(p);
    ++i;
  }
  vision::Image out(width, height);
  for (int y = 0; y < height; ++y) {
    const auto* src = img.ptr<std::uint8_t>(y);
    std::copy(src, src + width * 3, out.row(y));  // drawn in grey: BGR and RGB agree
  }
  return out;
}

// The visual tokens (sequence indices) of the first image whose merged-grid cell overlaps each
// box: the cells [x0 // cell, x1 // cell] as SparseMM's find_image_idx_qwen takes them.
std::vector<OcrChunk> chunks_of(const std::vector<Placed>& placed, const model::TokenLayout& layout,
                                const model::GridPlacement& where) {
  const at::Tensor visual = layout.visual_indices(0);
  const at::Tensor grid = layout.grid[0].index_select(0, visual);  // [N, 3] (t, h, w)
  const double rows = grid.select(1, 1).max().item<double>() + 1;
  const double cols = grid.select(1, 2).max().item<double>() + 1;
  const double cell_w = (where.x1 - where.x0) / cols, cell_h = (where.y1 - where.y0) / rows;
  std::vector<OcrChunk> out;
  for (const auto& p : placed) {
    const auto w0 = static_cast<std::int64_t>(std::floor((p.x0 - where.x0) / cell_w));
    const auto w1 = static_cast<std::int64_t>(std::floor((p.x1 - 1 - where.x0) / cell_w));
    const auto h0 = static_cast<std::int64_t>(std::floor((p.y0 - where.y0) / cell_h));
    const auto h1 = static_cast<std::int64_t>(std::floor((p.y1 - 1 - where.y0) / cell_h));
    OcrChunk c{p.text, {}};
    for (std::int64_t i = 0; i < visual.numel(); ++i) {
      const std::int64_t h = grid[i][1].item<std::int64_t>(), w = grid[i][2].item<std::int64_t>();
      if (h >= h0 && h <= h1 && w >= w0 && w <= w1)
        c.tokens.push_back(visual[i].item<std::int64_t>());
    }
    if (!c.tokens.empty()) out.push_back(std::move(c));
  }
  return out;
}

// The top-1 key of the newest row at every layer and head of each pass.
class NewestRowArgmax : public model::ForwardHooks {
 public:
  explicit NewestRowArgmax(std::int64_t layers, std::int64_t heads)
      : argmax_(at::full({layers, heads}, -1, at::kLong)) {}
  std::vector<model::ProbeRequest> probes(const model::ProbeSite& site) override {
    if (site.stage != model::ProbeStage::Attention) return {};
    return {model::ProbeRequest{}};  // the last row, every head, probabilities
  }
  void on_attention_probe(const model::AttentionProbe& probe) override {
    argmax_[probe.layer].copy_(probe.probs[0].select(1, 0).argmax(-1));  // [heads]
  }
  const at::Tensor& argmax() const { return argmax_; }

 private:
  at::Tensor argmax_;
};

std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\n\r") - b + 1);
}

}  // namespace

void add_visual_hits(const std::string& token, const std::vector<OcrChunk>& chunks,
                     const at::Tensor& argmax, at::Tensor& scores) {
  const std::string t = strip(token);
  if (t.empty()) return;
  const OcrChunk* hit = nullptr;
  int count = 0;
  for (const auto& c : chunks) {
    if (c.text.find(t) != std::string::npos) {
      hit = &c;
      ++count;
    }
  }
  if (count != 1 || hit->tokens.empty()) return;
  const double weight = 1.0 / static_cast<double>(hit->tokens.size());
  const at::Tensor region = at::tensor(hit->tokens, at::TensorOptions().dtype(at::kLong));
  const at::Tensor inside = at::isin(argmax, region);
  scores.add_(inside.to(at::kDouble) * weight);
}

std::string score_visual_heads(model::Model& model, const model::Processor& processor,
                               const VisualHeadOptions& options) {
  if (options.samples < 1 || options.max_new_tokens < 1 || options.width < 28 ||
      options.height < 28) {
    throw InputError(
        "visual-heads: expected samples and max_new_tokens >= 1 and pictures of at "
        "least 28 x 28 pixels");
  }
  if (!model.accepts_images()) throw UnsupportedError("visual-heads: the model takes no images");
  const model::DecoderShape& shape = model.decoder_shape();
  const std::int64_t layers = shape.num_layers, heads = shape.num_heads;
  std::mt19937_64 rng(options.seed);
  std::vector<std::vector<double>> per_sample(static_cast<std::size_t>(layers * heads));
  const auto eos = processor.eos_token_ids();
  for (std::int64_t s = 0; s < options.samples; ++s) {
    std::vector<Placed> placed;
    model::ProcessorRequest request;
    request.prompt = "Provide all the OCR results of this image.";
    request.images.push_back(draw_words(rng, options.width, options.height, 3, placed));
    const model::ProcessedInputs in = processor.process(request);
    const std::vector<OcrChunk> chunks =
        chunks_of(placed, in.layout, processor.grid_placement(options.width, options.height));
    NewestRowArgmax probe(layers, heads);
    model::ForwardOptions fo;
    fo.hooks = &probe;
    fo.last_logits_only = true;
    model::DecodeState state = model.new_state(1);
    at::Tensor logits = model.forward_cached(in.inputs, fo, state).logits;
    at::Tensor scores = at::zeros({layers, heads}, at::kDouble);
    for (std::int64_t t = 0; t < options.max_new_tokens; ++t) {
      // The token this pass generates and the pass's attention (decode / hit_score).
      const std::int64_t next = logits.select(1, -1).argmax(-1).item<std::int64_t>();
      add_visual_hits(processor.tokenizer().decode({next}), chunks, probe.argmax(), scores);
      if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
      model::ForwardInputs step;
      step.input_ids = at::full({1, 1}, next, at::kLong);
      logits = model.forward_cached(step, fo, state).logits;
    }
    for (std::int64_t l = 0; l < layers; ++l) {
      for (std::int64_t h = 0; h < heads; ++h)
        per_sample[static_cast<std::size_t>(l * heads + h)].push_back(scores[l][h].item<double>());
    }
  }
  nlohmann::ordered_json out;
  for (std::int64_t l = 0; l < layers; ++l) {
    for (std::int64_t h = 0; h < heads; ++h)
      out[std::to_string(l) + "-" + std::to_string(h)] =
          per_sample[static_cast<std::size_t>(l * heads + h)];
  }
  return out.dump();
}

}  // namespace glimpse::methods::kv
