#pragma once

// Added tokens (tokenizers/src/tokenizer/added_vocabulary.rs): special and user tokens that are
// cut out of the input before normalization and pre-tokenization, matched leftmost-longest.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "text/pieces.h"

namespace glimpse::text::detail {

struct AddedToken {
  std::string content;
  std::int64_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class Normalizer;

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `normalizer` (may be null) normalizes the contents of normalized tokens for matching.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Cuts the pieces that are not yet tokens: with the tokens matched on raw text
  // (normalized=false) when `normalized_set` is false, else with the normalized ones.
  void split(Pieces& pieces, bool normalized_set) const;

  std::optional<std::int64_t> token_to_id(std::string_view content) const;
  const AddedToken* find_id(std::int64_t id) const;
  bool is_special(std::string_view content) const { return special_.count(std::string(content)); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  // A byte trie of the patterns of one set.
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, std::int32_t>> children;
      std::int32_t token = -1;  // index into tokens_
    };
    std::vector<Node> nodes{1};
    std::array<bool, 256> first{};
    void insert(std::string_view pattern, std::int32_t token);
    // The longest pattern starting at `pos`: (token index, end), or token -1.
    std::pair<std::int32_t, std::size_t> longest_at(std::string_view text, std::size_t pos) const;
  };
  // Appends the parts of `piece`; returns false (appending nothing) when no token matches.
  bool split_piece(const Piece& piece, const Trie& trie, Pieces& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, std::int64_t> by_content_;
  std::unordered_map<std::int64_t, std::size_t> by_id_;
  std::unordered_set<std::string> special_;
  Trie raw_trie_, normalized_trie_;
  bool has_normalized_ = false;
};

}  // namespace glimpse::text::detail
