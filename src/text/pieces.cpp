#include "text/pieces.h"

#include <algorithm>

namespace glimpse::text::detail {

// tokenizers/src/tokenizer/normalizer.rs: NormalizedString::split, and
// tokenizers/src/tokenizer/pattern.rs: Pattern::find_matches for the (span, is_match) list.
void split_piece(Piece&& piece, const std::vector<Span>& matches, bool invert,
                 SplitBehavior behavior, Pieces& out) {
  const std::string& text = piece.text;
  struct Part {
    std::size_t begin, end;
    bool is_match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  if (text.empty()) {
    parts.push_back({0, 0, false});
  } else {
    std::size_t prev = 0;
    for (const auto& [s, e] : matches) {
      if (prev != s) parts.push_back({prev, s, false});
      parts.push_back({s, e, true});
      prev = e;
    }
    if (prev != text.size()) parts.push_back({prev, text.size(), false});
  }
  if (invert) {
    for (auto& p : parts) p.is_match = !p.is_match;
  }

  // (begin, end, remove)
  std::vector<Part> splits;
  splits.reserve(parts.size());
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& p : parts) splits.push_back({p.begin, p.end, false});
      break;
    case SplitBehavior::Removed:
      splits = parts;  // is_match now means "remove"
      break;
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match == previous_match && !splits.empty()) {
          splits.back().end = p.end;
        } else {
          splits.push_back({p.begin, p.end, false});
        }
        previous_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !previous_match && !splits.empty()) {
          splits.back().end = p.end;
        } else {
          splits.push_back({p.begin, p.end, false});
        }
        previous_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !splits.empty()) {
          splits.back().begin = it->begin;
        } else {
          splits.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(splits.begin(), splits.end());
      break;
    }
  }
  for (const auto& s : splits) {
    if (s.is_match || s.begin == s.end) continue;  // removed, or empty (PreTokenizedString::split)
    if (s.begin == 0 && s.end == text.size()) {
      out.push_back(std::move(piece));  // the whole piece: no copy
      continue;
    }
    Piece p;
    p.text = text.substr(s.begin, s.end - s.begin);
    p.at_start = piece.at_start && s.begin == 0;
    out.push_back(std::move(p));
  }
}

}  // namespace glimpse::text::detail
