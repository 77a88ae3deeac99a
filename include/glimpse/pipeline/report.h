#pragma once

// The run report: every method records its decisions and costs here (kept tokens, estimated
// FLOPs, ...); the CLI writes it as JSON with --report and inside --json output.

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
};

class Report {
 public:
  ReportEntry& add(const std::string& type);
  const std::vector<ReportEntry>& entries() const { return entries_; }
  // {"methods": [{"type": ..., <numbers>, <strings>, <lists>}, ...]}
  std::string to_json() const;

 private:
  std::vector<ReportEntry> entries_;
};

}  // namespace glimpse::pipeline
