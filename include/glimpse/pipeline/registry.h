#pragma once

// A string-keyed registry of factories (CTranslate2's model registry): the pipeline's methods and
// controllers are made from their JSON objects by "type". Registration order is deterministic
// (one registration function per kind, in methods/register.cpp).

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"

namespace glimpse::pipeline {

template <class T>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<T>(const core::Config& params)>;

  // The registry of every built-in T; specialised per T in methods/register.cpp.
  static Registry& instance();

  void add(const std::string& type, Factory factory) {
    if (find(type) != nullptr) throw Error("registry: '" + type + "' registered twice");
    entries_.emplace_back(type, std::move(factory));
  }
  const Factory* find(const std::string& type) const {
    for (const auto& [t, f] : entries_) {
      if (t == type) return &f;
    }
    return nullptr;
  }
  // Registered types, sorted.
  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (const auto& [t, f] : entries_) out.push_back(t);
    std::sort(out.begin(), out.end());
    return out;
  }
  // The object of `params` (a JSON object with "type"); ConfigError naming the key "type" and
  // the known types when it is not registered.
  std::unique_ptr<T> make(const core::Config& params, const char* what) const {
    const std::string type = params.get_string("type");
    const Factory* factory = find(type);
    if (factory == nullptr) {
      std::string known;
      for (const auto& t : types()) known += (known.empty() ? "" : ", ") + t;
      params.fail("type",
                  "unknown " + std::string(what) + " '" + type + "' (known: " + known + ")");
    }
    return (*factory)(params);
  }

 private:
  std::vector<std::pair<std::string, Factory>> entries_;
};

}  // namespace glimpse::pipeline
