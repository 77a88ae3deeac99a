#include "glimpse/pipeline/report.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace glimpse::pipeline {

ReportEntry& Report::add(const std::string& type) {
  entries_.push_back(ReportEntry{type, {}, {}, {}});
  return entries_.back();
}

std::string Report::to_json() const {
  nlohmann::json methods = nlohmann::json::array();
  for (const auto& e : entries_) {
    nlohmann::json j = {{"type", e.type}};
    for (const auto& [k, v] : e.numbers) {
      // Counts print as integers.
      if (std::nearbyint(v) == v && std::fabs(v) < 9.0e15) {
        j[k] = static_cast<std::int64_t>(v);
      } else {
        j[k] = v;
      }
    }
    for (const auto& [k, v] : e.strings) j[k] = v;
    for (const auto& [k, v] : e.lists) j[k] = v;
    methods.push_back(std::move(j));
  }
  return nlohmann::json{{"methods", methods}}.dump();
}

}  // namespace glimpse::pipeline
