#include "glimpse/model/registry.h"

#include <algorithm>
#include <filesystem>

#include "glimpse/core/error.h"
#include "models/register.h"

namespace glimpse::model {

ModelRegistry& ModelRegistry::instance() {
  static ModelRegistry* registry = [] {
    auto* r = new ModelRegistry();
    models::register_builtin_models(*r);  // one explicit call, deterministic order
    return r;
  }();
  return *registry;
}

void ModelRegistry::add(const std::string& key, ModelFactory factory) {
  if (find(key) != nullptr) throw Error("model registry: '" + key + "' registered twice");
  entries_.emplace_back(key, std::move(factory));
}

const ModelFactory* ModelRegistry::find(const std::string& key) const {
  for (const auto& [k, f] : entries_) {
    if (k == key) return &f;
  }
  return nullptr;
}

std::vector<std::string> ModelRegistry::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, f] : entries_) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw InputError("'" + dir + "': not a checkpoint folder");
  }
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  const auto config = core::Config::load(config_path);
  auto& registry = ModelRegistry::instance();
  std::vector<std::string> tried;
  if (config.has("architectures")) {
    const auto archs = config.get_string_list("architectures");
    if (!archs.empty()) {
      if (const auto* f = registry.find(archs[0])) return (*f)(dir, options);
      tried.push_back(archs[0]);
    }
  }
  if (config.has("model_type")) {
    const auto type = config.get_string("model_type");
    if (const auto* f = registry.find(type)) return (*f)(dir, options);
    tried.push_back(type);
  }
  std::string known;
  for (const auto& k : registry.keys()) known += (known.empty() ? "" : ", ") + k;
  if (tried.empty()) {
    throw ConfigError(config_path + ": neither 'architectures' nor 'model_type' is set");
  }
  throw UnsupportedError(config_path + ": unsupported model '" + tried.front() +
                         "' (known: " + known + ")");
}

}  // namespace glimpse::model
