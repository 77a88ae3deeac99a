#pragma once

// A string-keyed registry of model families. Keys are config.json `architectures[0]` values
// (e.g. "Qwen2VLForConditionalGeneration") and `model_type` values (e.g. "qwen2_vl"); an entry
// holds the family's model factory and, for families that take media or a chat, its processor
// factory. load_model and Processor::load try the architecture first. The built-in families are
// registered in one place (src/models/register.cpp), one line each; the registry itself knows
// none of them.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/model/model.h"

namespace glimpse::model {

class Processor;

using ModelFactory =
    std::function<std::unique_ptr<Model>(const std::string& dir, const LoadOptions& options)>;
using ProcessorFactory = std::function<std::unique_ptr<Processor>(const std::string& dir)>;

struct ModelEntry {
  ModelFactory model;
  ProcessorFactory processor;  // empty: the family has no processor (text-only models)
};

class ModelRegistry {
 public:
  // The registry with every built-in family registered.
  static ModelRegistry& instance();

  void add(const std::string& key, ModelFactory model, ProcessorFactory processor = {});
  const ModelEntry* find(const std::string& key) const;
  std::vector<std::string> keys() const;  // sorted

  // The entry of a checkpoint folder: its config.json's architectures[0], else model_type.
  // Throws InputError (no folder), ConfigError (neither key) or UnsupportedError naming the
  // known keys. `config_path` receives the config.json path.
  const ModelEntry& entry_for(const std::string& dir, std::string* config_path = nullptr) const;

 private:
  std::vector<std::pair<std::string, ModelEntry>> entries_;
};

}  // namespace glimpse::model
