#include "text/added_vocabulary.h"

#include "text/normalizers.h"
#include "text/unicode.h"

namespace glimpse::text::detail {
namespace {

// The last character of text[0, end), or 0.
char32_t char_before(std::string_view text, std::size_t end) {
  if (end == 0) return 0;
  std::size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  return next_code_point(text, begin);
}

char32_t char_at(std::string_view text, std::size_t pos) {
  return pos < text.size() ? next_code_point(text, pos) : 0;
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view pattern, std::int32_t token) {
  if (pattern.empty()) return;
  first[static_cast<unsigned char>(pattern[0])] = true;
  std::int32_t node = 0;
  for (const char ch : pattern) {
    const auto c = static_cast<unsigned char>(ch);
    std::int32_t next = -1;
    for (const auto& [k, v] : nodes[node].children) {
      if (k == c) next = v;
    }
    if (next < 0) {
      next = static_cast<std::int32_t>(nodes.size());
      nodes[node].children.emplace_back(c, next);
      nodes.emplace_back();
    }
    node = next;
  }
  // A repeated content keeps its first token (aho-corasick reports the first pattern).
  if (nodes[node].token < 0) nodes[node].token = token;
}

std::pair<std::int32_t, std::size_t> AddedVocabulary::Trie::longest_at(std::string_view text,
                                                                       std::size_t pos) const {
  std::pair<std::int32_t, std::size_t> best{-1, pos};
  std::int32_t node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::int32_t next = -1;
    for (const auto& [k, v] : nodes[node].children) {
      if (k == c) {
        next = v;
        break;
      }
    }
    if (next < 0) break;
    node = next;
    if (nodes[node].token >= 0) best = {nodes[node].token, i + 1};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const auto& t = tokens_[i];
    if (t.content.empty()) continue;  // tokenizers ignores empty added tokens
    by_content_[t.content] = t.id;
    by_id_[t.id] = i;
    if (t.special) special_.insert(t.content);
  }
  // Special tokens first, then the others, as refresh_added_tokens orders them.
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const auto& t = tokens_[i];
      if (t.content.empty() || t.special != (pass == 0)) continue;
      if (t.normalized) {
        std::string content = t.content;
        if (normalizer) normalizer->normalize(content);
        normalized_trie_.insert(content, static_cast<std::int32_t>(i));
        has_normalized_ = true;
      } else {
        raw_trie_.insert(t.content, static_cast<std::int32_t>(i));
      }
    }
  }
}

std::optional<std::int64_t> AddedVocabulary::token_to_id(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const AddedToken* AddedVocabulary::find_id(std::int64_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

void AddedVocabulary::split(Pieces& pieces, bool normalized_set) const {
  const Trie& trie = normalized_set ? normalized_trie_ : raw_trie_;
  if (trie.nodes.size() == 1) return;
  Pieces out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(std::move(piece));
    } else {
      if (!split_piece(piece, trie, out)) out.push_back(std::move(piece));  // no match
    }
  }
  pieces = std::move(out);
}

// AddedVocabulary::find_matches: leftmost-longest matches, single_word filtering, and lstrip /
// rstrip that pull the surrounding whitespace into the token.
bool AddedVocabulary::split_piece(const Piece& piece, const Trie& trie, Pieces& out) const {
  const std::string& s = piece.text;
  std::size_t start_offset = 0;
  struct Cut {
    std::size_t begin, end;
    std::int64_t id;
  };
  std::vector<Cut> cuts;
  auto emit = [&](std::size_t begin, std::size_t end, std::int64_t id) {
    if (begin != end) cuts.push_back({begin, end, id});  // empty splits are dropped
  };
  std::size_t pos = 0;
  while (pos < s.size()) {
    if (!trie.first[static_cast<unsigned char>(s[pos])]) {
      ++pos;
      continue;
    }
    const auto [index, match_end] = trie.longest_at(s, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[static_cast<std::size_t>(index)];
    std::size_t start = pos, stop = match_end;
    pos = match_end;  // the matcher resumes after this match, whatever happens to it
    if (start < start_offset) continue;  // inside whitespace an rstrip already took
    if (token.single_word) {
      const bool start_space = start == 0 || !is_word_char(char_before(s, start));
      const bool stop_space = stop == s.size() || !is_word_char(char_at(s, stop));
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) {
      std::size_t new_start = start;
      while (new_start > start_offset) {
        std::size_t prev = new_start - 1;
        while (prev > 0 && (static_cast<unsigned char>(s[prev]) & 0xC0) == 0x80) --prev;
        std::size_t tmp = prev;
        if (!is_whitespace(next_code_point(s, tmp))) break;
        new_start = prev;
      }
      start = new_start;
    }
    if (token.rstrip) {
      while (stop < s.size()) {
        std::size_t next = stop;
        if (!is_whitespace(next_code_point(s, next))) break;
        stop = next;
      }
      pos = stop;
    }
    emit(start_offset, start, -1);
    emit(start, stop, token.id);
    start_offset = stop;
  }
  if (cuts.empty()) return false;
  emit(start_offset, s.size(), -1);
  for (const auto& c : cuts) {
    Piece p;
    p.text = s.substr(c.begin, c.end - c.begin);
    p.at_start = piece.at_start && c.begin == 0;
    p.id = c.id;
    out.push_back(std::move(p));
  }
  return true;
}

}  // namespace glimpse::text::detail
