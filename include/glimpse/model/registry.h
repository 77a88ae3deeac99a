#pragma once

// A string-keyed registry of model implementations. Keys are config.json `architectures[0]`
// values (e.g. "Qwen2VLForConditionalGeneration") and `model_type` values (e.g. "qwen2_vl");
// load_model tries the architecture first.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "glimpse/model/model.h"

namespace glimpse::model {

using ModelFactory =
    std::function<std::unique_ptr<Model>(const std::string& dir, const LoadOptions& options)>;

class ModelRegistry {
 public:
  // The registry with every built-in model registered.
  static ModelRegistry& instance();

  void add(const std::string& key, ModelFactory factory);
  const ModelFactory* find(const std::string& key) const;
  std::vector<std::string> keys() const;  // sorted

 private:
  std::vector<std::pair<std::string, ModelFactory>> entries_;
};

}  // namespace glimpse::model
