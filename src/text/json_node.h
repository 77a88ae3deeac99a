#pragma once

// Typed reads from tokenizer.json and friends. Every error names the file and the dotted key
// ("pre_tokenizer.pretokenizers[1].pattern") and says what was expected against what was found.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace glimpse::text::detail {

class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, std::string file, std::string path = "")
      : value_(&value), file_(std::move(file)), path_(std::move(path)) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  bool is_null() const { return value_->is_null(); }
  bool is_object() const { return value_->is_object(); }
  bool is_array() const { return value_->is_array(); }
  bool is_string() const { return value_->is_string(); }

  // "file: key 'path': what" (or "file: what" at the top level).
  std::string where() const;
  [[noreturn]] void fail(const std::string& what) const;              // FormatError
  [[noreturn]] void fail_unsupported(const std::string& what) const;  // UnsupportedError

  // The member `key`; throws when this is not an object or the key is missing.
  JsonNode at(std::string_view key) const;
  // The member `key`, or nothing when it is missing or null.
  std::optional<JsonNode> find(std::string_view key) const;
  JsonNode at(std::size_t index) const;
  std::size_t size() const;  // of an array (throws otherwise)

  std::string as_string() const;
  bool as_bool() const;
  std::int64_t as_int() const;

  std::string get_string(std::string_view key) const { return at(key).as_string(); }
  std::string get_string(std::string_view key, const std::string& fallback) const;
  std::optional<std::string> get_optional_string(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::int64_t get_int(std::string_view key, std::int64_t fallback) const;

  void require_object() const;
  void require_array() const;

 private:
  std::string child_path(std::string_view key) const;

  const nlohmann::json* value_;
  std::string file_;
  std::string path_;
};

}  // namespace glimpse::text::detail
