#pragma once

namespace glimpse::pipeline {
class MethodRegistry;
}

namespace glimpse::methods {

// Registers every built-in method; called once by MethodRegistry::instance().
void register_builtin_methods(pipeline::MethodRegistry& registry);

}  // namespace glimpse::methods
