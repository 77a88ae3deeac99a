#include "glimpse/methods/inspect/attention_map.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <map>
#include <tuple>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"

namespace glimpse::methods::inspect {
namespace {

bool parse_index(const std::string& s, std::int64_t& out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  out = std::stoll(s);
  return true;
}

std::vector<std::int64_t> sorted_unique(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

}  // namespace

QuerySelector QuerySelector::parse(const std::string& text, const std::string& what) {
  QuerySelector q;
  const auto fail = [&]() -> QuerySelector {
    throw InputError(what + ": expected last, token:I, span:A-B (A <= B) or generated, found '" +
                     text + "'");
  };
  if (text == "last") return q;
  if (text == "generated") {
    q.kind = Kind::Generated;
    return q;
  }
  if (text.rfind("token:", 0) == 0) {
    q.kind = Kind::Token;
    if (!parse_index(text.substr(6), q.first)) return fail();
    q.last = q.first;
    return q;
  }
  if (text.rfind("span:", 0) == 0) {
    q.kind = Kind::Span;
    const std::string rest = text.substr(5);
    const auto dash = rest.find('-');
    if (dash == std::string::npos || !parse_index(rest.substr(0, dash), q.first) ||
        !parse_index(rest.substr(dash + 1), q.last) || q.first > q.last) {
      return fail();
    }
    return q;
  }
  return fail();
}

std::string QuerySelector::to_string() const {
  switch (kind) {
    case Kind::Last:
      return "last";
    case Kind::Token:
      return "token:" + std::to_string(first);
    case Kind::Span:
      return "span:" + std::to_string(first) + "-" + std::to_string(last);
    case Kind::Generated:
      return "generated";
  }
  return "last";
}

at::Tensor MediaMap::head_mean() const {
  return maps.mean(1);
}

std::string MediaMap::name() const {
  return (modality == model::Modality::Video ? "video" : "image") + std::to_string(index);
}

AttentionMap::AttentionMap(AttentionMapOptions options) : options_(std::move(options)) {
  options_.layers = sorted_unique(options_.layers);
  options_.heads = sorted_unique(options_.heads);
  for (const auto l : options_.layers) {
    if (l < 0) throw InputError("attention_map: layer " + std::to_string(l) + " is negative");
  }
  for (const auto h : options_.heads) {
    if (h < 0) throw InputError("attention_map: head " + std::to_string(h) + " is negative");
  }
  layers_ = options_.layers;
  heads_ = options_.heads;
}

std::unique_ptr<pipeline::Method> AttentionMap::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "layers" && key != "heads" && key != "query") {
      params.fail(key, "unknown attention_map parameter (expected layers, heads, query)");
    }
  }
  AttentionMapOptions o;
  o.layers = params.get_int_list("layers", {});
  o.heads = params.get_int_list("heads", {});
  for (const auto l : o.layers) {
    if (l < 0) params.fail("layers", "expected layer indices >= 0, found " + std::to_string(l));
  }
  for (const auto h : o.heads) {
    if (h < 0) params.fail("heads", "expected head indices >= 0, found " + std::to_string(h));
  }
  const std::string query = params.get_string("query", "last");
  try {
    o.query = QuerySelector::parse(query, "query");
  } catch (const InputError& e) {
    params.fail("query", e.what());
  }
  return std::make_unique<AttentionMap>(std::move(o));
}

std::int64_t AttentionMap::slot(std::int64_t layer) const {
  const auto it = std::lower_bound(layers_.begin(), layers_.end(), layer);
  return it != layers_.end() && *it == layer ? it - layers_.begin() : -1;
}

void AttentionMap::start(const model::BlockPre& block) {
  const model::DecoderShape& shape = *block.shape;
  num_layers_ = shape.num_layers;
  for (const auto l : options_.layers) {
    if (l >= shape.num_layers) {
      throw InputError("attention_map: layer " + std::to_string(l) +
                       " out of range (the model has " + std::to_string(shape.num_layers) +
                       " layers: 0.." + std::to_string(shape.num_layers - 1) + ")");
    }
  }
  for (const auto h : options_.heads) {
    if (h >= shape.num_heads) {
      throw InputError("attention_map: head " + std::to_string(h) +
                       " out of range (the model has " + std::to_string(shape.num_heads) +
                       " heads: 0.." + std::to_string(shape.num_heads - 1) + ")");
    }
  }
  layers_ = options_.layers.empty() ? iota(shape.num_layers) : options_.layers;
  heads_ = options_.heads.empty() ? iota(shape.num_heads) : options_.heads;

  const model::TokenLayout* layout = block.layout;
  if (layout == nullptr || !layout->defined()) {
    throw Error("attention_map: the model gave no token layout");
  }
  prompt_length_ = layout->length();
  if (options_.query.prefill() && options_.query.last >= prompt_length_) {
    throw InputError("attention_map: query " + options_.query.to_string() +
                     " is outside the prompt of " + std::to_string(prompt_length_) + " tokens");
  }
  // Media in order (images, then videos, each by index), with their grid extents.
  // Media are numbered over the whole batch; each belongs to one sequence.
  std::map<std::pair<int, std::int64_t>, std::array<std::int64_t, 3>> extents;
  std::map<std::pair<int, std::int64_t>, std::int64_t> sequence_of;
  for (std::int64_t b = 0; b < layout->batch(); ++b) {
    const at::Tensor modality = layout->modality[b].to(at::kInt).contiguous();
    const at::Tensor media = layout->media_index[b].contiguous();
    const at::Tensor grid = layout->grid[b].contiguous();
    const auto* mo = modality.data_ptr<int>();
    const auto* me = media.data_ptr<std::int64_t>();
    const auto* g = grid.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < prompt_length_; ++i) {
      if (mo[i] == static_cast<int>(model::Modality::Text) || g[3 * i] < 0) continue;
      auto& e = extents[{mo[i], me[i]}];
      for (int k = 0; k < 3; ++k) e[k] = std::max(e[k], g[3 * i + k] + 1);
      sequence_of[{mo[i], me[i]}] = b;
    }
  }
  media_.clear();
  sums_.clear();
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const auto nl = static_cast<std::int64_t>(layers_.size());
  const auto nh = static_cast<std::int64_t>(heads_.size());
  for (const auto& [key, e] : extents) {
    MediaMap m;
    m.modality = static_cast<model::Modality>(key.first);
    m.index = key.second;
    m.t = e[0];
    m.h = e[1];
    m.w = e[2];
    m.sequence = sequence_of[key];
    media_.push_back(m);
    sums_.push_back(at::zeros({nl, nh, m.t * m.h * m.w}, f32));
  }
  prefill_layouts_.assign(layers_.size(), model::TokenLayout{});
  key_cells_.assign(layers_.size(), {});
  rows_per_slot_.assign(layers_.size(), 0);
  query_indices_.clear();
  rows_ = 0;
  decode_index_ = -1;
}

void AttentionMap::on_block_pre(model::BlockPre& block) {
  if (block.prefill && block.layer == 0) start(block);
  if (num_layers_ == 0) return;  // no prefill seen yet
  if (block.prefill) {
    current_ = *block.layout;
    const std::int64_t s = slot(block.layer);
    if (s >= 0) prefill_layouts_[static_cast<std::size_t>(s)] = current_;
  } else if (block.layer == 0 && block.layout != nullptr && block.layout->defined()) {
    decode_index_ = block.layout->original_index[0][-1].item<std::int64_t>();
  }
}

std::optional<model::ProbeRequest> AttentionMap::probe(const model::ProbeSite& site) {
  const std::int64_t layer = site.layer;
  const bool prefill = site.prefill;
  const std::int64_t s = slot(layer);
  if (s < 0 || prefill != options_.query.prefill() || num_layers_ == 0 ||
      site.stage != model::ProbeStage::Attention)
    return std::nullopt;
  model::ProbeRequest request;  // the last row of every head
  if (!prefill || options_.query.kind == QuerySelector::Kind::Last) return request;
  // Prompt indices to rows of the sequence this layer sees (rows move when tokens were pruned).
  const model::TokenLayout& layout = prefill_layouts_[static_cast<std::size_t>(s)].defined()
                                         ? prefill_layouts_[static_cast<std::size_t>(s)]
                                         : current_;
  // Probe rows are shared by the batch: every sequence must have the queried tokens at the same
  // rows (true unless a method pruned the sequences differently).
  request.rows = model::RowSelection{};
  for (std::int64_t b = 0; b < layout.batch(); ++b) {
    const at::Tensor original = layout.original_index[b].contiguous();
    const auto* o = original.data_ptr<std::int64_t>();
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < original.numel(); ++i) {
      if (o[i] >= options_.query.first && o[i] <= options_.query.last) rows.push_back(i);
    }
    if (b > 0 && rows != request.rows.indices) {
      throw UnsupportedError("attention_map: query " + options_.query.to_string() +
                             " sits at different rows in the sequences of the batch at layer " +
                             std::to_string(layer) + " (pruned differently)");
    }
    request.rows.indices = std::move(rows);
  }
  const auto want = options_.query.last - options_.query.first + 1;
  if (static_cast<std::int64_t>(request.rows.indices.size()) != want) {
    throw Error("attention_map: query " + options_.query.to_string() +
                " asks for prompt tokens that were pruned before layer " + std::to_string(layer));
  }
  return request;
}

void AttentionMap::on_attention_probe(const model::AttentionProbe& probe) {
  const std::int64_t s = slot(probe.layer);
  if (s < 0 || probe.prefill != options_.query.prefill() || num_layers_ == 0) return;
  const auto su = static_cast<std::size_t>(s);
  const model::TokenLayout& layout =
      prefill_layouts_[su].defined() ? prefill_layouts_[su] : current_;
  const at::Tensor& probs = probe.probs;  // [B, heads, rows, keys]
  if (probs.dim() != 4 || probs.size(0) != layout.batch()) {
    throw UnsupportedError("attention_map: expected a probe [" + std::to_string(layout.batch()) +
                           ", heads, rows, keys]");
  }
  const std::int64_t n = layout.length(), keys = probs.size(3);
  // At prefill the keys are this pass's tokens; at a decode step the cached prompt comes first.
  if (probe.prefill ? keys != n : keys < n) {
    throw Error("attention_map: layer " + std::to_string(probe.layer) + "'s probe has " +
                std::to_string(keys) + " keys but the layout has " + std::to_string(n) +
                " tokens (a method in the same pipeline changed the sequence at this layer)");
  }
  const at::Tensor heads = at::tensor(heads_, at::TensorOptions().dtype(at::kLong));
  // [B, heads', keys]: summed over the query rows, divided by the row count in maps().
  const at::Tensor mass =
      probs.to(at::kFloat).index_select(1, heads).sum(2).narrow(2, 0, n).contiguous();
  auto& cells = key_cells_[su];
  if (cells.empty()) {
    // Which key lands on which cell of which medium, from the layout this layer saw.
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    for (const auto& m : media_) {
      const at::Tensor modality = layout.modality[m.sequence].to(at::kInt);
      const at::Tensor media = layout.media_index[m.sequence];
      const at::Tensor grid = layout.grid[m.sequence];
      const at::Tensor sel = modality.eq(static_cast<int>(m.modality))
                                 .logical_and(media.eq(m.index))
                                 .logical_and(grid.select(1, 0).ge(0));
      const at::Tensor idx = sel.nonzero().view({-1}).to(i64);
      const at::Tensor g = grid.index_select(0, idx);
      const at::Tensor cell = (g.select(1, 0) * m.h + g.select(1, 1)) * m.w + g.select(1, 2);
      cells.emplace_back(idx, cell);
    }
  }
  for (std::size_t m = 0; m < media_.size(); ++m) {
    sums_[m][s].index_add_(1, cells[m].second,
                           mass[media_[m].sequence].index_select(1, cells[m].first));
  }
  const auto rows = static_cast<std::int64_t>(probe.rows.size());
  rows_per_slot_[su] += rows;
  if (s == 0) {
    rows_ += rows;
    if (probe.prefill) {
      const at::Tensor original = layout.original_index[0];
      for (const auto r : probe.rows) {
        query_indices_.push_back(original[r].item<std::int64_t>());
      }
    } else {
      query_indices_.push_back(decode_index_);
    }
  }
}

std::vector<MediaMap> AttentionMap::maps() const {
  for (std::size_t i = 0; i < rows_per_slot_.size(); ++i) {
    if (rows_per_slot_[i] == 0) {
      throw Error("attention_map: no attention probe arrived for layer " +
                  std::to_string(layers_[i]) +
                  (options_.query.prefill()
                       ? std::string()
                       : std::string(" (\"generated\" needs at least two new tokens: the last "
                                     "one is never fed back)")));
    }
  }
  if (rows_per_slot_.empty()) throw Error("attention_map: nothing ran");
  std::vector<double> counts(rows_per_slot_.begin(), rows_per_slot_.end());
  const at::Tensor divisor =
      at::tensor(counts, at::TensorOptions().dtype(at::kDouble)).to(at::kFloat).view({-1, 1, 1});
  std::vector<MediaMap> out = media_;
  for (std::size_t m = 0; m < out.size(); ++m) {
    out[m].maps =
        (sums_[m] / divisor)
            .view({static_cast<std::int64_t>(layers_.size()),
                   static_cast<std::int64_t>(heads_.size()), out[m].t, out[m].h, out[m].w});
  }
  return out;
}

void AttentionMap::report(pipeline::Report& report) const {
  auto& e = report.add("attention_map");
  e.strings["query"] = options_.query.to_string();
  e.lists["layers"] = layers_;
  e.lists["heads"] = heads_;
  e.lists["query_indices"] = query_indices_;
  e.numbers["query_rows"] = static_cast<double>(rows_);
  e.numbers["media"] = static_cast<double>(media_.size());
  if (rows_ == 0) return;
  // Mean (over layers and heads) attention mass each medium received.
  const auto maps = this->maps();
  for (const auto& m : maps) {
    e.numbers["mass." + m.name()] = m.maps.sum(at::IntArrayRef{2, 3, 4}).mean().item<double>();
  }
}

}  // namespace glimpse::methods::inspect
