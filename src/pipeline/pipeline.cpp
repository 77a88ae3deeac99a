#include "glimpse/pipeline/pipeline.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "glimpse/core/error.h"

namespace glimpse::pipeline {

Pipeline Pipeline::from_json(const std::string& spec, const std::string& source) {
  const auto root = core::Config::parse(spec, source);
  for (const auto& key : root.keys()) {
    if (key != "methods" && key != "controller")
      root.fail(key, "unknown key (a pipeline has \"methods\" and \"controller\")");
  }
  Pipeline p;
  if (root.has("methods")) {
    const auto& list = root.raw().at("methods");
    if (!list.is_array()) root.fail("methods", "expected a list of method objects");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string where = source + ": methods[" + std::to_string(i) + "]";
      if (!list[i].is_object()) throw ConfigError(where + ": expected an object");
      p.add(MethodRegistry::instance().make(core::Config::from_json(list[i], where), "method"));
    }
  }
  if (root.has("controller")) {
    const auto& object = root.raw().at("controller");
    if (!object.is_object()) root.fail("controller", "expected an object with \"type\"");
    p.set_controller(ControllerRegistry::instance().make(
        core::Config::from_json(object, source + ": controller"), "controller"));
  }
  return p;
}

Pipeline Pipeline::from_argument(const std::string& argument) {
  const auto first = argument.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && argument[first] == '{')
    return from_json(argument, "--pipeline");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(argument, ec)) {
    throw InputError("--pipeline: '" + argument + "' is neither a JSON object nor a readable file");
  }
  std::ifstream in(argument, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(text.str(), argument);
}

Report Pipeline::report() const {
  Report r;
  for (const auto& m : methods_) m->report(r);
  if (controller_) r.set_section("controller", controller_->report_json());
  return r;
}

void Pipeline::add(std::unique_ptr<Method> method) {
  methods_.push_back(method.get());
  owned_.push_back(std::move(method));
}

void Pipeline::bind(const MethodContext& context) {
  for (const auto& m : methods_) m->bind(context);
  if (controller_) controller_->bind(context);
}

namespace {

std::vector<std::int64_t> sorted_union(const std::vector<std::int64_t>& a,
                                       const std::vector<std::int64_t>& b) {
  std::vector<std::int64_t> out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Positions of `wanted` (increasing) within `have` (increasing, a superset).
std::vector<std::int64_t> positions(const std::vector<std::int64_t>& wanted,
                                    const std::vector<std::int64_t>& have) {
  std::vector<std::int64_t> out;
  out.reserve(wanted.size());
  for (const auto w : wanted) {
    const auto it = std::lower_bound(have.begin(), have.end(), w);
    if (it == have.end() || *it != w)
      throw Error("pipeline: a probe lacks a requested row or head");
    out.push_back(static_cast<std::int64_t>(it - have.begin()));
  }
  return out;
}

bool plain(const model::ProbeRequest& r) {
  return r.over_rows == model::ProbeReduce::None && r.over_heads == model::ProbeReduce::None;
}

}  // namespace

std::vector<model::ProbeRequest> Pipeline::probes(const model::ProbeSite& site) {
  asked_.clear();
  std::vector<model::ProbeRequest> merged;
  for (std::size_t i = 0; i < methods_.size(); ++i) {
    auto request = methods_[i]->probe(site);
    if (!request) continue;
    auto heads = request->heads;
    std::sort(heads.begin(), heads.end());
    request->heads = heads;
    Asked asked{i, *request, merged.size()};
    for (std::size_t j = 0; j < merged.size(); ++j) {
      model::ProbeRequest& m = merged[j];
      if (!m.same_shape_as(*request)) continue;
      if (plain(*request)) {
        // Unreduced rows merge into their union; each method gets its rows back.
        m.rows.last = std::max(m.rows.last, request->rows.last);
        m.rows.all = m.rows.all || request->rows.all;
        auto mine = request->rows.indices;
        std::sort(mine.begin(), mine.end());
        m.rows.indices = sorted_union(m.rows.indices, mine);
        m.heads = m.heads.empty() || request->heads.empty() ? std::vector<std::int64_t>{}
                                                            : sorted_union(m.heads, request->heads);
      } else if (!(m.rows == request->rows && m.heads == request->heads)) {
        continue;  // a reduction over other rows or heads is its own computation
      }
      asked.merged = j;
      break;
    }
    if (asked.merged == merged.size()) merged.push_back(*request);
    asked_.push_back(std::move(asked));
  }
  return merged;
}

void Pipeline::on_attention_probe(const model::AttentionProbe& probe) {
  for (const auto& asked : asked_) {
    if (asked.merged != probe.request) continue;
    Method& method = *methods_[asked.method];
    if (!plain(asked.request)) {
      method.on_attention_probe(probe);
      continue;
    }
    // This method's own rows and heads out of the merged probe.
    const auto rows = asked.request.rows.resolve(probe.query_length, "attention probe");
    const auto& heads = asked.request.heads.empty() ? probe.heads : asked.request.heads;
    if (rows == probe.rows && heads == probe.heads) {
      method.on_attention_probe(probe);
      continue;
    }
    model::AttentionProbe own = probe;
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    own.probs = probe.probs.index_select(2, at::tensor(positions(rows, probe.rows), i64))
                    .index_select(1, at::tensor(positions(heads, probe.heads), i64));
    own.rows = rows;
    own.heads = heads;
    method.on_attention_probe(own);
  }
}

std::vector<model::VisionProbeRequest> Pipeline::vision_probes(std::int64_t layer) {
  std::vector<model::VisionProbeRequest> merged;
  vision_asked_.assign(methods_.size(), -1);
  for (std::size_t i = 0; i < methods_.size(); ++i) {
    const auto request = methods_[i]->vision_probe(layer);
    if (!request) continue;
    auto it = std::find(merged.begin(), merged.end(), *request);
    if (it == merged.end()) it = merged.insert(merged.end(), *request);
    vision_asked_[i] = it - merged.begin();
  }
  return merged;
}

void Pipeline::on_vision_attention_probe(const model::VisionAttentionProbe& probe) {
  for (std::size_t i = 0; i < methods_.size() && i < vision_asked_.size(); ++i) {
    if (vision_asked_[i] == static_cast<std::int64_t>(probe.index))
      methods_[i]->on_vision_attention_probe(probe);
  }
}

void Pipeline::on_vision_block(model::VisionBlock& block) {
  for (const auto& m : methods_) m->on_vision_block(block);
}

namespace {

// Applies one method's keep `k` (into the `tokens` it saw) to a keep chain: the rows of `rows`
// (`group` rows per token) when they still hold every token, and the composed keep `total`
// into the original tokens.
void compose_keep(const at::Tensor& k, std::int64_t tokens, std::int64_t group, at::Tensor& rows,
                  at::Tensor& total, const std::string& site) {
  const at::Tensor kk = model::checked_keep(k, tokens, site);
  if (rows.defined() && rows.size(0) == tokens * group && kk.numel() != tokens) {
    const at::Tensor r =
        (kk.view({-1, 1}) * group + at::arange(group, kk.options()).view({1, -1})).view({-1});
    rows = rows.index_select(0, r);
  }
  total = total.defined() ? total.index_select(0, kk) : kk;
}

}  // namespace

void Pipeline::on_vision_features(model::VisionFeatures& features) {
  // Every method runs in order; each sees the features and keep of those before it.
  const std::size_t media = features.features.size();
  std::vector<at::Tensor> total(media);
  std::vector<std::int64_t> tokens(media);
  for (std::size_t j = 0; j < media; ++j) tokens[j] = features.features[j].size(0) / features.group;
  model::PositionPolicy policy = model::PositionPolicy::Keep;
  for (const auto& m : methods_) {
    model::VisionFeatures current = features;
    current.keep.assign(media, at::Tensor());
    current.positions = model::PositionPolicy::Keep;
    m->on_vision_features(current);
    if (current.features.size() != media) {
      throw InputError("vision.features: " + m->type() + " changed the number of media");
    }
    for (std::size_t j = 0; j < media; ++j) {
      features.features[j] = current.features[j];
      if (j >= current.keep.size() || !current.keep[j].defined()) continue;
      compose_keep(current.keep[j], tokens[j], features.group, features.features[j], total[j],
                   "vision.features: " + m->type() + ": medium " + std::to_string(j));
      tokens[j] = total[j].numel();
      // One method's compaction compacts the composed keep (as at blocks.{i}.pre).
      if (current.positions == model::PositionPolicy::Compact) policy = current.positions;
    }
  }
  features.keep = std::move(total);
  features.positions = policy;
}

void Pipeline::on_vision_out(model::VisionOut& vision) {
  // Every method runs in order; each sees the rows the ones before it kept.
  at::Tensor image_keep, video_keep;
  std::int64_t images = vision.image_embeds.defined() ? vision.image_embeds.size(0) : 0;
  std::int64_t videos = vision.video_embeds.defined() ? vision.video_embeds.size(0) : 0;
  model::PositionPolicy policy = model::PositionPolicy::Keep;
  for (const auto& m : methods_) {
    vision.image_keep = vision.video_keep = at::Tensor();
    vision.positions = model::PositionPolicy::Keep;
    m->on_vision_out(vision);
    if ((vision.image_keep.defined() || vision.video_keep.defined()) &&
        vision.positions == model::PositionPolicy::Compact) {
      policy = vision.positions;
    }
    if (vision.image_keep.defined()) {
      compose_keep(vision.image_keep, images, 1, vision.image_embeds, image_keep,
                   "vision.out: " + m->type() + ": image_keep");
      images = image_keep.numel();
    }
    if (vision.video_keep.defined()) {
      compose_keep(vision.video_keep, videos, 1, vision.video_embeds, video_keep,
                   "vision.out: " + m->type() + ": video_keep");
      videos = video_keep.numel();
    }
  }
  vision.image_keep = image_keep;
  vision.video_keep = video_keep;
  vision.positions = policy;
}

namespace {

// Indices into the original sequence of the tokens that `later` keeps of what `earlier` kept; -1
// stays padding.
at::Tensor compose_keeps(const at::Tensor& earlier, const at::Tensor& later, std::int64_t batch) {
  if (!earlier.defined()) return later;
  if (earlier.dim() == 1 && later.dim() == 1) return earlier.index_select(0, later);
  const at::Tensor e = earlier.dim() == 1 ? earlier.unsqueeze(0).expand({batch, -1}) : earlier;
  const at::Tensor l = later.dim() == 1 ? later.unsqueeze(0).expand({batch, -1}) : later;
  return e.gather(1, l.clamp_min(0)).masked_fill(l.lt(0), -1);
}

}  // namespace

void Pipeline::on_block_pre(model::BlockPre& block) {
  // Every method runs, in order; each sees the sequence the ones before it kept.
  model::TokenLayout layout = block.layout != nullptr ? *block.layout : model::TokenLayout{};
  model::BlockPre current = block;
  current.layout = &layout;
  at::Tensor keep;  // composed: indices into the sequence that entered the site
  model::PositionPolicy policy = model::PositionPolicy::Keep;
  for (const auto& m : methods_) {
    current.keep = at::Tensor();
    current.positions = model::PositionPolicy::Keep;
    m->on_block_pre(current);
    if (!current.keep.defined()) continue;
    // One method's compaction compacts the site's composed keep.
    if (current.positions == model::PositionPolicy::Compact) policy = current.positions;
    const std::int64_t s = layout.defined() ? layout.length() : current.hidden.size(1);
    const std::int64_t batch = current.hidden.size(0);
    const at::Tensor k = model::checked_keep(
        current.keep, s, "blocks." + std::to_string(block.layer) + ".pre: " + m->type(), batch);
    if (!current.hidden_kept) current.hidden = model::select_tokens(current.hidden, k);
    current.hidden_kept = false;  // the next method sees the kept rows as its sequence
    if (layout.defined()) layout = layout.select(k);
    keep = compose_keeps(keep, k, batch);
  }
  block.hidden = current.hidden;
  block.hidden_kept = keep.defined();
  block.keep = keep;
  block.positions = policy;
}

void Pipeline::on_attention(model::AttentionSite& site) {
  for (const auto& m : methods_) m->on_attention(site);
}

void Pipeline::on_mlp(model::MlpSite& mlp) {
  for (const auto& m : methods_) m->on_mlp(mlp);
}

void Pipeline::on_block_post(model::BlockPost& block) {
  // A method that exits ends the layer for the methods after it too; they still see the site.
  for (const auto& m : methods_) m->on_block_post(block);
}

void Pipeline::on_kv(model::KvSite& kv) {
  for (const auto& m : methods_) m->on_kv(kv);
}

void Pipeline::on_logits(at::Tensor& logits, bool prefill) {
  for (const auto& m : methods_) m->on_logits(logits, prefill);
}

void Pipeline::on_inputs(const model::ForwardInputs& inputs, const at::Tensor& before) {
  for (const auto& m : methods_) m->on_inputs(inputs, before);
}

}  // namespace glimpse::pipeline
