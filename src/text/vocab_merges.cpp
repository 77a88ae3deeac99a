// vocab.json + merges.txt: the slow byte-level BPE tokenizers of transformers
// (models/qwen2/tokenization_qwen2.py: Qwen2Tokenizer, models/gpt2/tokenization_gpt2.py), run
// by the tokenizer.json pipeline with the components those classes hard-code.
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <unordered_set>

#include "core/json_util.h"
#include "glimpse/core/error.h"
#include "text/backend.h"

namespace glimpse::text::detail {
namespace {

using nlohmann::json;

// Qwen2Tokenizer's PRETOKENIZE_REGEX.
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError("cannot read '" + path + "'");
  return ss.str();
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

}  // namespace

std::shared_ptr<const Backend> make_vocab_merges_backend(const std::string& vocab_path,
                                                         const std::string& merges_path,
                                                         const TokenizerConfig& config,
                                                         const TokenizerOptions& options) {
  json vocab = core::read_json_file(vocab_path);
  if (!vocab.is_object()) {
    throw FormatError(vocab_path + ": expected an object {token: id}, found " +
                      core::json_type_name(vocab));
  }
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > INT32_MAX) {
      throw FormatError(vocab_path + ": token '" + token + "' needs an id in [0, 2^31), found " +
                        id.dump());
    }
  }

  // Qwen2Tokenizer.__init__: strip each line, skip a first "#version:" line and blank lines,
  // split on whitespace.
  const std::string text = read_text_file(merges_path);
  if (const auto bad = core::first_invalid_utf8(text)) {
    throw FormatError(merges_path + ": not valid UTF-8 (byte " + std::to_string(*bad) + ")");
  }
  json merges = json::array();
  std::istringstream lines(text);
  std::string line;
  for (std::size_t number = 1; std::getline(lines, line); ++number) {
    std::size_t b = 0, e = line.size();
    while (b < e && is_space(line[b])) ++b;
    while (e > b && is_space(line[e - 1])) --e;
    line = line.substr(b, e - b);
    if (line.empty() || (number == 1 && line.rfind("#version:", 0) == 0)) continue;
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_space(line[i])) ++i;
      const std::size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      if (i > start) parts.push_back(line.substr(start, i - start));
    }
    const std::string where = merges_path + ": line " + std::to_string(number);
    if (parts.size() != 2) {
      throw FormatError(where + ": expected two tokens separated by a space, found '" + line + "'");
    }
    for (const auto& token : {parts[0], parts[1], parts[0] + parts[1]}) {
      if (!vocab.contains(token)) {
        throw FormatError(where + ": token '" + token + "' is not in " + vocab_path);
      }
    }
    merges.push_back(json::array({parts[0], parts[1]}));
  }

  json root;
  root["model"] = {{"type", "BPE"},
                   {"vocab", std::move(vocab)},
                   {"merges", std::move(merges)},
                   {"unk_token", nullptr},
                   {"byte_fallback", false}};
  const std::string& cls = config.tokenizer_class;
  const bool gpt2 = cls.rfind("GPT2Tokenizer", 0) == 0 || cls.rfind("Roberta", 0) == 0;
  if (gpt2) {
    root["normalizer"] = nullptr;
    root["pre_tokenizer"] = {{"type", "ByteLevel"},
                             {"add_prefix_space", config.add_prefix_space.value_or(false)},
                             {"use_regex", true}};
  } else {
    // Qwen2Tokenizer.prepare_for_tokenization applies NFC; _tokenize splits with the regex.
    root["normalizer"] = {{"type", "NFC"}};
    root["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array(
             {{{"type", "Split"},
               {"pattern", {{"Regex", kQwen2Pattern}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  }
  root["decoder"] = {{"type", "ByteLevel"}};
  root["post_processor"] = nullptr;
  // Slow tokenizers match every added token on the raw text.
  json added = json::array();
  for (const auto& t : config.added_tokens) {
    added.push_back({{"id", t.id},
                     {"content", t.content},
                     {"special", t.special},
                     {"single_word", t.single_word},
                     {"lstrip", t.lstrip},
                     {"rstrip", t.rstrip},
                     {"normalized", false}});
  }
  root["added_tokens"] = std::move(added);
  return make_pipeline_backend(std::move(root), vocab_path, config, options,
                               "vocab.json+merges.txt");
}

}  // namespace glimpse::text::detail
