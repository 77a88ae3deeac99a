// tokenizer_config.json, added_tokens.json and special_tokens_map.json.
#include <nlohmann/json.hpp>

#include <set>

#include "core/json_util.h"
#include "text/backend.h"
#include "text/json_node.h"

namespace glimpse::text::detail {
namespace {

// A special token given as "<s>" or as {"content": "<s>", ...} (AddedToken serialization).
std::optional<std::string> token_name(const JsonNode& root, std::string_view key) {
  const auto node = root.find(key);
  if (!node) return std::nullopt;
  if (node->is_string()) return node->as_string();
  if (node->is_object()) return node->get_string("content");
  node->fail("expected a string or an object with \"content\"");
}

AddedToken parse_added_token(const JsonNode& node, std::int64_t id) {
  node.require_object();
  AddedToken t;
  t.id = id;
  t.content = node.get_string("content");
  t.special = node.get_bool("special", false);
  t.single_word = node.get_bool("single_word", false);
  t.lstrip = node.get_bool("lstrip", false);
  t.rstrip = node.get_bool("rstrip", false);
  t.normalized = node.get_bool("normalized", !t.special);
  return t;
}

}  // namespace

std::vector<std::string> TokenizerConfig::special_token_names() const {
  std::vector<std::string> names;
  for (const auto* t : {&bos_token, &eos_token, &unk_token, &pad_token}) {
    if (*t) names.push_back(**t);
  }
  names.insert(names.end(), additional_special_tokens.begin(), additional_special_tokens.end());
  return names;
}

TokenizerConfig parse_tokenizer_config(const nlohmann::json& value, const std::string& source) {
  const JsonNode root(value, source);
  root.require_object();
  TokenizerConfig c;
  c.source = source;
  c.tokenizer_class = root.get_string("tokenizer_class", "");
  if (const auto n = root.find("legacy")) c.legacy = n->as_bool();
  if (const auto n = root.find("add_bos_token")) c.add_bos_token = n->as_bool();
  if (const auto n = root.find("add_eos_token")) c.add_eos_token = n->as_bool();
  if (const auto n = root.find("add_prefix_space")) c.add_prefix_space = n->as_bool();
  c.clean_up_tokenization_spaces = root.get_bool("clean_up_tokenization_spaces", false);
  c.bos_token = token_name(root, "bos_token");
  c.eos_token = token_name(root, "eos_token");
  c.unk_token = token_name(root, "unk_token");
  c.pad_token = token_name(root, "pad_token");
  if (const auto list = root.find("additional_special_tokens")) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const JsonNode item = list->at(i);
      c.additional_special_tokens.push_back(item.is_string() ? item.as_string()
                                                             : item.get_string("content"));
    }
  }
  if (const auto decoder = root.find("added_tokens_decoder")) {
    decoder->require_object();
    for (const auto& [key, entry] : decoder->value().items()) {
      std::int64_t id = -1;
      try {
        std::size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      if (id < 0 || id > INT32_MAX) {
        decoder->fail("expected token ids as keys, found '" + key + "'");
      }
      c.added_tokens.push_back(parse_added_token(decoder->at(key), id));
    }
  }
  return c;
}

TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir) {
  TokenizerConfig c;
  std::error_code ec;
  const auto config_path = dir / "tokenizer_config.json";
  if (std::filesystem::is_regular_file(config_path, ec)) {
    c = parse_tokenizer_config(core::read_json_file(config_path.string()), config_path.string());
  }
  if (!c.added_tokens.empty()) return c;
  // Older checkpoints: added_tokens.json {content: id}; special_tokens_map.json says which are
  // special.
  const auto added_path = dir / "added_tokens.json";
  if (!std::filesystem::is_regular_file(added_path, ec)) return c;
  std::set<std::string> special;
  for (const auto& n : c.special_token_names()) special.insert(n);
  const auto map_path = dir / "special_tokens_map.json";
  if (std::filesystem::is_regular_file(map_path, ec)) {
    const auto map =
        parse_tokenizer_config(core::read_json_file(map_path.string()), map_path.string());
    for (const auto& n : map.special_token_names()) special.insert(n);
  }
  const auto added = core::read_json_file(added_path.string());
  const JsonNode root(added, added_path.string());
  root.require_object();
  for (const auto& [content, id] : added.items()) {
    const JsonNode node = root.at(content);
    const std::int64_t value = node.as_int();
    if (value < 0 || value > INT32_MAX) node.fail("expected a token id in [0, 2^31)");
    AddedToken t;
    t.content = content;
    t.id = value;
    t.special = special.count(content) > 0;
    t.normalized = !t.special;
    c.added_tokens.push_back(std::move(t));
  }
  return c;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f(from), t(to);
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0, prev = 0;
    while ((pos = text.find(f, prev)) != std::string::npos) {
      out.append(text, prev, pos - prev);
      out += t;
      prev = pos + f.size();
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }
  return text;
}

}  // namespace glimpse::text::detail
