#include "models/register.h"

#include "glimpse/model/registry.h"
#include "models/llama/modeling.h"
#include "models/llava/modeling.h"
#include "models/qwen2_vl/modeling.h"

namespace glimpse::models {

void register_builtin_models(model::ModelRegistry& registry) {
  qwen2_vl::register_models(registry);
  llava::register_models(registry);
  llama::register_models(registry);
}

}  // namespace glimpse::models
