#include "glimpse/model/registry.h"

#include <algorithm>
#include <filesystem>

#include "glimpse/core/error.h"
#include "glimpse/model/processor.h"

namespace glimpse::model {

void ModelRegistry::add(const std::string& key, ModelFactory model, ProcessorFactory processor) {
  if (find(key) != nullptr) throw Error("model registry: '" + key + "' registered twice");
  entries_.emplace_back(key, ModelEntry{std::move(model), std::move(processor)});
}

const ModelEntry* ModelRegistry::find(const std::string& key) const {
  for (const auto& [k, e] : entries_) {
    if (k == key) return &e;
  }
  return nullptr;
}

std::vector<std::string> ModelRegistry::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, e] : entries_) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

const ModelEntry& ModelRegistry::entry_for(const std::string& dir, std::string* path) const {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw InputError("'" + dir + "': not a checkpoint folder");
  }
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  if (path != nullptr) *path = config_path;
  const auto config = core::Config::load(config_path);
  std::vector<std::string> tried;
  if (config.has("architectures")) {
    const auto archs = config.get_string_list("architectures");
    if (!archs.empty()) {
      if (const auto* e = find(archs[0])) return *e;
      tried.push_back(archs[0]);
    }
  }
  if (config.has("model_type")) {
    const auto type = config.get_string("model_type");
    if (const auto* e = find(type)) return *e;
    tried.push_back(type);
  }
  if (tried.empty()) {
    throw ConfigError(config_path + ": neither 'architectures' nor 'model_type' is set");
  }
  std::string known;
  for (const auto& k : keys()) known += (known.empty() ? "" : ", ") + k;
  throw UnsupportedError(config_path + ": unsupported model '" + tried.front() +
                         "' (known: " + known + ")");
}

std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options) {
  return ModelRegistry::instance().entry_for(dir).model(dir, options);
}

}  // namespace glimpse::model
