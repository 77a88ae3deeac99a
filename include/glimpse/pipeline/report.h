#pragma once

// The run report: every method records its decisions and costs here (kept tokens, estimated
// FLOPs, ...); the CLI writes it as JSON with --report and inside --json output.
//
// Schema: {"methods": [{"type": ..., <numbers>, <strings>, <lists>, <objects>}, ...],
//          <sections>}. Numbers, strings and int lists cover flat records; `objects` and the
// top-level sections hold any JSON value (nested objects and lists: the "session" object, KV
// memory per layer and head, a controller's rounds), given as JSON text and checked when added.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace glimpse::pipeline {

struct ReportEntry {
  std::string type;  // the method's registry name
  std::map<std::string, double> numbers;
  std::map<std::string, std::string> strings;
  std::map<std::string, std::vector<std::int64_t>> lists;
  std::map<std::string, std::string> objects;  // key -> JSON text (see set_object)

  // Stores `json` (JSON text of any shape) under `key`; FormatError when it does not parse.
  void set_object(const std::string& key, const std::string& json);
};

class Report {
 public:
  ReportEntry& add(const std::string& type);
  const std::vector<ReportEntry>& entries() const { return entries_; }
  // A top-level section beside "methods" ("session", "kv", "rounds"): JSON text of any shape,
  // replacing an earlier one of that name. FormatError when it does not parse or is "methods".
  void set_section(const std::string& key, const std::string& json);
  const std::map<std::string, std::string>& sections() const { return sections_; }
  // {"methods": [...], <sections>}
  std::string to_json() const;

 private:
  std::vector<ReportEntry> entries_;
  std::map<std::string, std::string> sections_;
};

}  // namespace glimpse::pipeline
