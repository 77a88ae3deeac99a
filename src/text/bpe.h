#pragma once

// The BPE model (tokenizers/src/models/bpe/model.rs and word.rs): merges applied by rank with a
// priority queue over a linked list of symbols, O(n log n) in the word length, with a per-word
// cache.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/json_node.h"

namespace glimpse::text::detail {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;  // empty: none
  std::string end_of_word_suffix;         // empty: none
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe {
 public:
  // `merge_where(i)` names merge i in error messages ("tokenizer.json: key 'model.merges[3]'").
  Bpe(std::unordered_map<std::string, std::uint32_t> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
      const std::function<std::string(std::size_t)>& merge_where, const std::string& where);

  // The "model" object of tokenizer.json (type BPE).
  static std::unique_ptr<Bpe> from_json(const JsonNode& model);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<std::uint32_t>& ids) const;

  std::optional<std::uint32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(std::uint32_t id) const;
  std::size_t vocab_size() const { return vocab_.size(); }
  std::size_t max_id_plus_one() const { return max_id_plus_one_; }

 private:
  void merge_word(std::string_view word, std::vector<std::uint32_t>& ids) const;

  std::unordered_map<std::string, std::uint32_t> vocab_;
  std::unordered_map<std::uint32_t, std::string> vocab_r_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> merges_;
  BpeOptions options_;
  std::optional<std::uint32_t> unk_id_;
  std::size_t max_id_plus_one_ = 0;

  static constexpr std::size_t kCacheCapacity = 10000;  // tokenizers' DEFAULT_CACHE_CAPACITY
  static constexpr std::size_t kCacheMaxWord = 256;     // tokenizers' MAX_LENGTH
  mutable std::mutex cache_mutex_;
  // Keys view into cache_keys_ (never erased), so that a lookup allocates nothing.
  mutable std::unordered_map<std::string_view, std::vector<std::uint32_t>> cache_;
  mutable std::deque<std::string> cache_keys_;
};

}  // namespace glimpse::text::detail
