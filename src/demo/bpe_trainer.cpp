#include "demo/bpe_trainer.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>

#include "core/json_util.h"
#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"
#include "text/json_node.h"
#include "text/pre_tokenizers.h"

namespace glimpse::demo {
namespace {

using json = nlohmann::json;

// The UTF-8 characters of a byte-level piece (each stands for one byte).
std::vector<std::string> chars(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

BpeTrainResult train_bpe_tokenizer(const std::string& path, const std::vector<std::string>& texts,
                                   const BpeTrainOptions& options) {
  json t = core::read_json_file(path);
  json& vocab = t.at("model").at("vocab");
  if (!t.at("model").at("merges").empty())
    throw ConfigError(path + ": key 'model.merges': expected none before training");
  const auto pre =
      text::detail::make_pre_tokenizer(text::detail::JsonNode(t.at("pre_tokenizer"), path));

  // Word counts, each word as its byte characters.
  std::map<std::string, std::int64_t> counts;
  for (const std::string& text : texts) {
    text::detail::Pieces pieces{{text, true, -1}};
    pre->pre_tokenize(pieces);
    for (const auto& p : pieces) ++counts[p.text];
  }
  std::vector<std::pair<std::vector<std::string>, std::int64_t>> words;
  for (const auto& [w, n] : counts) words.push_back({chars(w), n});

  std::set<std::int64_t> taken;
  for (const auto& [token, id] : vocab.items()) taken.insert(id.get<std::int64_t>());
  BpeTrainResult result;
  result.first_merge_id = 256;
  for (std::int64_t m = 0; m < options.max_merges; ++m) {
    std::map<std::pair<std::string, std::string>, std::int64_t> pairs;
    for (const auto& [symbols, n] : words) {
      for (std::size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += n;
    }
    // The most frequent pair; ties go to the smallest pair (std::map order), deterministically.
    const std::pair<std::string, std::string>* best = nullptr;
    std::int64_t best_count = 1;
    for (const auto& [pair, n] : pairs) {
      if (n > best_count) {
        best = &pair;
        best_count = n;
      }
    }
    if (best == nullptr) break;
    const auto merge = *best;
    const std::string joined = merge.first + merge.second;
    const std::int64_t id = result.first_merge_id + m;
    if (taken.count(id))
      throw ConfigError(path + ": merged token " + std::to_string(id) +
                        " collides with an added token; lower max_merges or move the specials");
    vocab[joined] = id;
    taken.insert(id);
    result.merges.push_back(merge);
    for (auto& [symbols, n] : words) {
      std::vector<std::string> next;
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merge.first && symbols[i + 1] == merge.second) {
          next.push_back(joined);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
  }
  json merges = json::array();
  for (const auto& [a, b] : result.merges) merges.push_back(json::array({a, b}));
  t["model"]["merges"] = merges;
  {
    std::ofstream out(path);
    out << t.dump(1) << "\n";
    if (!out) throw FormatError(path + ": cannot write");
  }
  const auto tok = text::Tokenizer::load(path);
  for (const std::string& w : options.single_token_words) {
    const auto ids = tok.encode_ids(w);
    if (ids.size() != 1)
      throw ConfigError(path + ": word '" + w + "' is " + std::to_string(ids.size()) +
                        " tokens after training; expected one (give more merges or more text)");
  }
  return result;
}

}  // namespace glimpse::demo
