#include "methods/register.h"

#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/pipeline/pipeline.h"
#include "methods/prune/fastv.h"

namespace glimpse::methods {

void register_builtin_methods(pipeline::MethodRegistry& registry) {
  registry.add("fastv", &prune::FastV::create);
  registry.add("attention_map", &inspect::AttentionMap::create);
}

}  // namespace glimpse::methods
