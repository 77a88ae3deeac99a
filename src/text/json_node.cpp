#include "text/json_node.h"

#include "core/json_util.h"
#include "glimpse/core/error.h"

namespace glimpse::text::detail {

std::string JsonNode::where() const {
  return path_.empty() ? file_ : file_ + ": key '" + path_ + "'";
}

void JsonNode::fail(const std::string& what) const {
  throw FormatError(where() + ": " + what);
}

void JsonNode::fail_unsupported(const std::string& what) const {
  throw UnsupportedError(where() + ": " + what);
}

std::string JsonNode::child_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void JsonNode::require_object() const {
  if (!value_->is_object()) fail("expected an object, found " + core::json_type_name(*value_));
}

void JsonNode::require_array() const {
  if (!value_->is_array()) fail("expected an array, found " + core::json_type_name(*value_));
}

JsonNode JsonNode::at(std::string_view key) const {
  require_object();
  const auto it = value_->find(std::string(key));
  if (it == value_->end()) {
    throw FormatError(where() + ": missing key '" + child_path(key) + "'");
  }
  return JsonNode(*it, file_, child_path(key));
}

std::optional<JsonNode> JsonNode::find(std::string_view key) const {
  require_object();
  const auto it = value_->find(std::string(key));
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonNode(*it, file_, child_path(key));
}

JsonNode JsonNode::at(std::size_t index) const {
  require_array();
  if (index >= value_->size()) fail("index " + std::to_string(index) + " out of range");
  return JsonNode((*value_)[index], file_, path_ + "[" + std::to_string(index) + "]");
}

std::size_t JsonNode::size() const {
  require_array();
  return value_->size();
}

std::string JsonNode::as_string() const {
  if (!value_->is_string()) fail("expected a string, found " + core::json_type_name(*value_));
  return value_->get<std::string>();
}

bool JsonNode::as_bool() const {
  if (!value_->is_boolean()) fail("expected a boolean, found " + core::json_type_name(*value_));
  return value_->get<bool>();
}

std::int64_t JsonNode::as_int() const {
  if (value_->is_number_unsigned()) {
    const auto v = value_->get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(INT64_MAX)) fail("integer out of range");
    return static_cast<std::int64_t>(v);
  }
  if (!value_->is_number_integer()) {
    fail("expected an integer, found " + core::json_type_name(*value_));
  }
  return value_->get<std::int64_t>();
}

std::string JsonNode::get_string(std::string_view key, const std::string& fallback) const {
  const auto node = find(key);
  return node ? node->as_string() : fallback;
}

std::optional<std::string> JsonNode::get_optional_string(std::string_view key) const {
  const auto node = find(key);
  if (!node) return std::nullopt;
  return node->as_string();
}

bool JsonNode::get_bool(std::string_view key, bool fallback) const {
  const auto node = find(key);
  return node ? node->as_bool() : fallback;
}

std::int64_t JsonNode::get_int(std::string_view key, std::int64_t fallback) const {
  const auto node = find(key);
  return node ? node->as_int() : fallback;
}

}  // namespace glimpse::text::detail
