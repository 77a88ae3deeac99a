#include "methods/register.h"

#include "glimpse/pipeline/pipeline.h"
#include "methods/prune/fastv.h"

namespace glimpse::methods {

void register_builtin_methods(pipeline::MethodRegistry& registry) {
  registry.add("fastv", &prune::FastV::create);
}

}  // namespace glimpse::methods
