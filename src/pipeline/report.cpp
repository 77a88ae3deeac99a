#include "glimpse/pipeline/report.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"

namespace glimpse::pipeline {

namespace {

void check_json(const std::string& key, const std::string& json) {
  if (!nlohmann::json::accept(json)) {
    throw FormatError("report: the value of '" + key + "' is not JSON text");
  }
}

}  // namespace

void ReportEntry::set_object(const std::string& key, const std::string& json) {
  check_json(key, json);
  objects[key] = json;
}

ReportEntry& Report::add(const std::string& type) {
  entries_.push_back(ReportEntry{type, {}, {}, {}, {}});
  return entries_.back();
}

void Report::set_section(const std::string& key, const std::string& json) {
  if (key == "methods") throw FormatError("report: 'methods' is not a section name");
  check_json(key, json);
  sections_[key] = json;
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
    for (const auto& [k, v] : e.objects) j[k] = nlohmann::json::parse(v);
    methods.push_back(std::move(j));
  }
  nlohmann::json out{{"methods", methods}};
  for (const auto& [k, v] : sections_) out[k] = nlohmann::json::parse(v);
  return out.dump();
}

}  // namespace glimpse::pipeline
