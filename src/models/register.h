#pragma once

namespace glimpse::model {
class ModelRegistry;
}

namespace glimpse::models {

// Registers every built-in model family; called once by ModelRegistry::instance().
void register_builtin_models(model::ModelRegistry& registry);

}  // namespace glimpse::models
