#pragma once

// Typed access to JSON configuration files (config.json, preprocessor_config.json, ...).
// Keys are dotted paths ("vision_config.depth"); errors name the file and the key and say what
// was expected against what was found.

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::core {

class Config {
 public:
  // Reads a JSON object from a file. Throws InputError or FormatError (not an object, bad JSON).
  static Config load(const std::string& path);
  // Wraps an object; `source` names it in messages (a file name, or "pipeline").
  static Config from_json(const nlohmann::json& value, std::string source);
  static Config parse(std::string_view text, std::string source);

  Config(const Config& other);
  Config& operator=(const Config& other);
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;
  ~Config();

  const std::string& source() const { return source_; }
  const std::string& prefix() const { return prefix_; }

  // True when the key exists and is not null.
  bool has(std::string_view key) const;

  std::int64_t get_int(std::string_view key) const;
  std::int64_t get_int(std::string_view key, std::int64_t fallback) const;
  double get_float(std::string_view key) const;  // integers are accepted too
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& fallback) const;
  std::vector<std::int64_t> get_int_list(std::string_view key) const;
  std::vector<std::int64_t> get_int_list(std::string_view key,
                                         const std::vector<std::int64_t>& fallback) const;
  std::vector<double> get_float_list(std::string_view key) const;
  std::vector<std::string> get_string_list(std::string_view key) const;
  std::vector<std::string> get_string_list(std::string_view key,
                                           const std::vector<std::string>& fallback) const;

  // A nested object as its own Config; messages keep the full dotted path.
  Config section(std::string_view key) const;
  std::optional<Config> find_section(std::string_view key) const;

  // Keys of this object, in sorted order.
  std::vector<std::string> keys() const;
  const nlohmann::json& raw() const;

  // Throws ConfigError naming the key (with this config's file and prefix).
  [[noreturn]] void fail(std::string_view key, const std::string& what) const;

 private:
  Config();
  const nlohmann::json* lookup(std::string_view key) const;
  const nlohmann::json& require(std::string_view key) const;
  std::string full_key(std::string_view key) const;

  std::unique_ptr<nlohmann::json> value_;
  std::string source_;
  std::string prefix_;  // dotted path of this section inside the file, empty at the top
};

}  // namespace glimpse::core
