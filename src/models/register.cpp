// The built-in model families: one registration line each. The registry is defined here, on the
// models' side, so that model/registry.cpp depends on no family.
#include "glimpse/model/registry.h"
#include "models/llama/modeling.h"
#include "models/llava/modeling.h"
#include "models/qwen2_vl/modeling.h"

namespace glimpse::model {

ModelRegistry& ModelRegistry::instance() {
  static ModelRegistry* registry = [] {
    auto* r = new ModelRegistry();
    models::qwen2_vl::register_models(*r);
    models::llava::register_models(*r);
    models::llama::register_models(*r);
    return r;
  }();
  return *registry;
}

}  // namespace glimpse::model
