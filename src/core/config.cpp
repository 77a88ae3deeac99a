#include "glimpse/core/config.h"

#include <nlohmann/json.hpp>

#include "core/json_util.h"
#include "glimpse/core/error.h"

namespace glimpse::core {
using nlohmann::json;

namespace {

std::string describe(const json& v) {
  std::string s = json_type_name(v);
  if (v.is_primitive() && !v.is_null()) {
    std::string dumped = v.dump();
    if (dumped.size() > 40) dumped = dumped.substr(0, 37) + "...";
    s += " (" + dumped + ")";
  }
  return s;
}

}  // namespace

Config::Config() : value_(std::make_unique<json>(json::object())) {}
Config::Config(const Config& other)
    : value_(std::make_unique<json>(*other.value_)),
      source_(other.source_),
      prefix_(other.prefix_) {}
Config& Config::operator=(const Config& other) {
  if (this != &other) {
    value_ = std::make_unique<json>(*other.value_);
    source_ = other.source_;
    prefix_ = other.prefix_;
  }
  return *this;
}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Config Config::load(const std::string& path) {
  return from_json(read_json_file(path), path);
}

Config Config::parse(std::string_view text, std::string source) {
  return from_json(parse_json_strict(text, source), std::move(source));
}

Config Config::from_json(const json& value, std::string source) {
  if (!value.is_object()) {
    throw FormatError(source + ": expected a JSON object, found " + json_type_name(value));
  }
  Config c;
  *c.value_ = value;
  c.source_ = std::move(source);
  return c;
}

std::string Config::full_key(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

void Config::fail(std::string_view key, const std::string& what) const {
  throw ConfigError(source_ + ": key '" + full_key(key) + "': " + what);
}

const json* Config::lookup(std::string_view key) const {
  const json* node = value_.get();
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    const std::string part(key.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (!node->is_object()) return nullptr;
    const auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return node->is_null() ? nullptr : node;
}

const json& Config::require(std::string_view key) const {
  if (const json* v = lookup(key)) return *v;
  fail(key, "missing");
}

bool Config::has(std::string_view key) const {
  return lookup(key) != nullptr;
}

std::int64_t Config::get_int(std::string_view key) const {
  const json& v = require(key);
  if (v.is_number_integer() &&
      !(v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
    return v.get<std::int64_t>();
  }
  fail(key, "expected an integer, found " + describe(v));
}

std::int64_t Config::get_int(std::string_view key, std::int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double Config::get_float(std::string_view key) const {
  const json& v = require(key);
  if (v.is_number()) return v.get<double>();
  fail(key, "expected a number, found " + describe(v));
}

double Config::get_float(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool Config::get_bool(std::string_view key) const {
  const json& v = require(key);
  if (v.is_boolean()) return v.get<bool>();
  fail(key, "expected true or false, found " + describe(v));
}

bool Config::get_bool(std::string_view key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}

std::string Config::get_string(std::string_view key) const {
  const json& v = require(key);
  if (v.is_string()) return v.get<std::string>();
  fail(key, "expected a string, found " + describe(v));
}

std::string Config::get_string(std::string_view key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<std::int64_t> Config::get_int_list(std::string_view key) const {
  const json& v = require(key);
  if (!v.is_array()) fail(key, "expected a list of integers, found " + describe(v));
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer() ||
        (v[i].is_number_unsigned() &&
         v[i].get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
      fail(key, "element " + std::to_string(i) + ": expected an integer, found " + describe(v[i]));
    }
    out.push_back(v[i].get<std::int64_t>());
  }
  return out;
}

std::vector<std::int64_t> Config::get_int_list(std::string_view key,
                                               const std::vector<std::int64_t>& fallback) const {
  return has(key) ? get_int_list(key) : fallback;
}

std::vector<double> Config::get_float_list(std::string_view key) const {
  const json& v = require(key);
  if (!v.is_array()) fail(key, "expected a list of numbers, found " + describe(v));
  std::vector<double> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number()) {
      fail(key, "element " + std::to_string(i) + ": expected a number, found " + describe(v[i]));
    }
    out.push_back(v[i].get<double>());
  }
  return out;
}

std::vector<std::string> Config::get_string_list(std::string_view key) const {
  const json& v = require(key);
  if (!v.is_array()) fail(key, "expected a list of strings, found " + describe(v));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) {
      fail(key, "element " + std::to_string(i) + ": expected a string, found " + describe(v[i]));
    }
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::vector<std::string> Config::get_string_list(std::string_view key,
                                                 const std::vector<std::string>& fallback) const {
  return has(key) ? get_string_list(key) : fallback;
}

Config Config::section(std::string_view key) const {
  const json& v = require(key);
  if (!v.is_object()) fail(key, "expected an object, found " + describe(v));
  Config c;
  *c.value_ = v;
  c.source_ = source_;
  c.prefix_ = full_key(key);
  return c;
}

std::optional<Config> Config::find_section(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return section(key);
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : value_->items()) out.push_back(k);
  return out;
}

const json& Config::raw() const {
  return *value_;
}

}  // namespace glimpse::core
