#include "glimpse/eval/sweep.h"

#include <cstdlib>

#include "glimpse/core/error.h"

namespace glimpse::eval {

Sweep parse_sweep(const std::string& spec) {
  const auto dot = spec.find('.'), eq = spec.find('=');
  if (dot == std::string::npos || eq == std::string::npos || dot == 0 || eq < dot + 2 ||
      eq + 1 >= spec.size())
    throw InputError("--sweep '" + spec +
                     "': expected TYPE.KEY=v1,v2,... (e.g. fastv.ratio=0.25,0.5)");
  Sweep s;
  s.method = spec.substr(0, dot);
  s.key = spec.substr(dot + 1, eq - dot - 1);
  std::string rest = spec.substr(eq + 1);
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto comma = rest.find(',', start);
    const std::string v =
        rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (v.empty()) throw InputError("--sweep '" + spec + "': empty value");
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (end != nullptr && *end == '\0') {
      if (v.find_first_of(".eE") == std::string::npos) {
        s.values.push_back(std::strtoll(v.c_str(), nullptr, 10));
      } else {
        s.values.push_back(d);
      }
    } else {
      s.values.push_back(v);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (s.values.size() > 64) throw InputError("--sweep: at most 64 values");
  return s;
}

std::string sweep_pipeline(const std::string& base, const Sweep& sweep,
                           const nlohmann::json& value) {
  nlohmann::json p = {{"methods", nlohmann::json::array()}};
  if (!base.empty()) {
    try {
      p = nlohmann::json::parse(base);
    } catch (const nlohmann::json::exception&) {
      throw InputError("--pipeline: not JSON (a sweep needs the pipeline's JSON)");
    }
    if (!p.is_object() || !p.contains("methods") || !p.at("methods").is_array())
      throw InputError("--pipeline: expected {\"methods\": [...]}");
  }
  bool found = false;
  for (auto& m : p["methods"]) {
    if (m.is_object() && m.value("type", "") == sweep.method) {
      m[sweep.key] = value;
      found = true;
    }
  }
  if (!found) p["methods"].push_back({{"type", sweep.method}, {sweep.key, value}});
  return p.dump();
}

}  // namespace glimpse::eval
