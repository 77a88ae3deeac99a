#pragma once

// Strict JSON helpers shared by the parsers of checkpoint, config and pipeline files.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace glimpse::core {

// Nesting deeper than this is rejected before parsing; no file glimpse reads needs more.
inline constexpr int kMaxJsonDepth = 64;

// Offset of the first byte that is not part of well-formed UTF-8, or nothing.
std::optional<std::size_t> first_invalid_utf8(std::string_view text);

// Parses `text` as one JSON value. Rejects invalid UTF-8, nesting deeper than kMaxJsonDepth and
// duplicate object keys. Throws FormatError prefixed with `source`.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

// Reads and parses a whole file (InputError when it cannot be read, FormatError when invalid).
nlohmann::json read_json_file(const std::string& path);

// "a string", "an integer", "an object", ... for messages.
std::string json_type_name(const nlohmann::json& value);

}  // namespace glimpse::core
