#pragma once

// A sweep over one setting of one pipeline method (glimpse eval --sweep fastv.ratio=0.25,0.5):
// the pipeline of each value is the base pipeline with that method's key set (the method added
// when the base lacks it).

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace glimpse::eval {

struct Sweep {
  std::string method, key;
  std::vector<nlohmann::json> values;  // numbers, or strings when not numbers
};

// "TYPE.KEY=v1,v2,...". Throws InputError naming --sweep and what was expected.
Sweep parse_sweep(const std::string& spec);

// The pipeline JSON text for one value. `base` is a pipeline's JSON text (empty: no methods).
// Throws InputError for a base that is not a pipeline object.
std::string sweep_pipeline(const std::string& base, const Sweep& sweep,
                           const nlohmann::json& value);

}  // namespace glimpse::eval
