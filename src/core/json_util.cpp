#include "core/json_util.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "glimpse/core/error.h"

namespace glimpse::core {
using nlohmann::json;

std::optional<std::size_t> first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 table)
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::nullopt;
}

namespace {

// Depth of the deepest array/object, counting only brackets outside strings.
int max_depth(std::string_view s) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxJsonDepth) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

json parse_json_strict(std::string_view text, const std::string& source) {
  if (const auto bad = first_invalid_utf8(text)) {
    throw FormatError(source + ": not valid UTF-8 (byte " + std::to_string(*bad) + ")");
  }
  if (max_depth(text) > kMaxJsonDepth) {
    throw FormatError(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                      " levels");
  }
  // Duplicate keys: count key events per object and compare with the parsed object's size (a
  // vocabulary object has 150k keys, too many for a set per object); name the key in a slower
  // second pass only when a count differs.
  std::vector<std::size_t> counts;
  bool has_duplicate = false;
  const json::parser_callback_t count_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      counts.push_back(0);
    } else if (event == json::parse_event_t::key && !counts.empty()) {
      ++counts.back();
    } else if (event == json::parse_event_t::object_end && !counts.empty()) {
      if (counts.back() != parsed.size()) has_duplicate = true;
      counts.pop_back();
    }
    return true;
  };
  auto parse = [&](const json::parser_callback_t& cb) {
    try {
      return json::parse(text.begin(), text.end(), cb);
    } catch (const json::exception& e) {
      std::string what = e.what();
      // nlohmann prefixes "[json.exception.parse_error.101] "; keep the readable part.
      if (const auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
      throw FormatError(source + ": invalid JSON: " + what);
    }
  };
  json value = parse(count_keys);
  if (has_duplicate) {
    std::vector<std::set<std::string>> keys;
    std::string duplicate;
    parse([&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start) {
        keys.emplace_back();
      } else if (event == json::parse_event_t::object_end) {
        if (!keys.empty()) keys.pop_back();
      } else if (event == json::parse_event_t::key && !keys.empty()) {
        const auto& k = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
      }
      return true;
    });
    throw FormatError(source + ": duplicate key '" + duplicate + "'");
  }
  return value;
}

json read_json_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError("cannot open '" + path + "': not a readable file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError("cannot read '" + path + "'");
  return parse_json_strict(ss.str(), path);
}

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    default:
      return "an unknown value";
  }
}

}  // namespace glimpse::core
