#include "glimpse/pipeline/pipeline.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "glimpse/core/error.h"
#include "methods/register.h"

namespace glimpse::pipeline {

MethodRegistry& MethodRegistry::instance() {
  static MethodRegistry* registry = [] {
    auto* r = new MethodRegistry();
    methods::register_builtin_methods(*r);
    return r;
  }();
  return *registry;
}

void MethodRegistry::add(const std::string& type, MethodFactory factory) {
  if (find(type) != nullptr) throw Error("method registry: '" + type + "' registered twice");
  entries_.emplace_back(type, std::move(factory));
}

const MethodFactory* MethodRegistry::find(const std::string& type) const {
  for (const auto& [t, f] : entries_) {
    if (t == type) return &f;
  }
  return nullptr;
}

std::vector<std::string> MethodRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& [t, f] : entries_) out.push_back(t);
  std::sort(out.begin(), out.end());
  return out;
}

Pipeline Pipeline::from_json(const std::string& spec, const std::string& source) {
  const auto root = core::Config::parse(spec, source);
  for (const auto& key : root.keys()) {
    if (key != "methods") {
      root.fail(key, "unknown key (a pipeline has \"methods\"; controllers come later)");
    }
  }
  Pipeline p;
  if (!root.has("methods")) return p;
  const auto& list = root.raw().at("methods");
  if (!list.is_array()) root.fail("methods", "expected a list of method objects");
  auto& registry = MethodRegistry::instance();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = source + ": methods[" + std::to_string(i) + "]";
    if (!list[i].is_object()) throw ConfigError(where + ": expected an object");
    const auto params = core::Config::from_json(list[i], where);
    const std::string type = params.get_string("type");
    const auto* factory = registry.find(type);
    if (factory == nullptr) {
      std::string known;
      for (const auto& t : registry.types()) known += (known.empty() ? "" : ", ") + t;
      params.fail("type", "unknown method '" + type + "' (known: " + known + ")");
    }
    p.add((*factory)(params));
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
  return r;
}

std::optional<model::ProbeRequest> Pipeline::probe(std::int64_t layer, bool prefill) {
  std::optional<model::ProbeRequest> merged;
  for (const auto& m : methods_) {
    auto req = m->probe(layer, prefill);
    if (!req) continue;
    if (!merged) {
      merged = std::move(req);
    } else if (merged->last_row != req->last_row || merged->rows != req->rows) {
      throw UnsupportedError("two methods ask for different attention probe rows at layer " +
                             std::to_string(layer));
    }
  }
  return merged;
}

void Pipeline::on_vision_out(model::VisionOut& vision) {
  for (const auto& m : methods_) m->on_vision_out(vision);
}

void Pipeline::on_block_pre(model::BlockPre& block) {
  for (const auto& m : methods_) {
    m->on_block_pre(block);
    if (block.keep.defined() && &m != &methods_.back()) {
      // Later methods see the pruned sequence only from the next layer on.
      break;
    }
  }
}

void Pipeline::on_attention_probe(const model::AttentionProbe& probe) {
  for (const auto& m : methods_) m->on_attention_probe(probe);
}

void Pipeline::on_mlp(model::MlpSite& mlp) {
  for (const auto& m : methods_) m->on_mlp(mlp);
}

void Pipeline::on_block_post(std::int64_t layer, const at::Tensor& hidden, bool prefill) {
  for (const auto& m : methods_) m->on_block_post(layer, hidden, prefill);
}

void Pipeline::on_kv(model::KvSite& kv) {
  for (const auto& m : methods_) m->on_kv(kv);
}

void Pipeline::on_logits(at::Tensor& logits, bool prefill) {
  for (const auto& m : methods_) m->on_logits(logits, prefill);
}

}  // namespace glimpse::pipeline
