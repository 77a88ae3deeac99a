#pragma once

// The pieces a text is cut into on its way to the model: tokenizers' PreTokenizedString without
// offsets, which glimpse does not report.

#include <cstdint>
#include <string>
#include <vector>

#include "text/regex.h"

namespace glimpse::text::detail {

struct Piece {
  std::string text;
  // True when the piece starts at offset 0 of the original input; Metaspace's prepend_scheme
  // "first" prepends only there (tokenizers compares offsets_original().0 with 0).
  bool at_start = false;
  // The id of an added token matched by the added vocabulary, else -1 (then the model encodes it).
  std::int64_t id = -1;
};
using Pieces = std::vector<Piece>;

// tokenizers' SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Cuts `piece` around `matches` (sorted, non-overlapping spans, empty ones allowed) as
// NormalizedString::split does, and appends the non-empty parts to `out`.
void split_piece(Piece&& piece, const std::vector<Span>& matches, bool invert,
                 SplitBehavior behavior, Pieces& out);

// Spans of the single characters of `text` for which `pred` holds (the char-predicate Pattern).
template <class Pred>
void char_matches(const std::string& text, Pred pred, std::vector<Span>& out);

}  // namespace glimpse::text::detail

#include "text/unicode.h"

namespace glimpse::text::detail {

template <class Pred>
void char_matches(const std::string& text, Pred pred, std::vector<Span>& out) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t begin = i;
    const char32_t cp = next_code_point(text, i);
    if (pred(cp)) out.emplace_back(begin, i);
  }
}

}  // namespace glimpse::text::detail
