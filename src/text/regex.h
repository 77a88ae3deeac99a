#pragma once

// Patterns for Split pre-tokenizers, Replace normalizers and decoders: an Oniguruma-style regex
// (what tokenizers compiles with the onig crate) run through PCRE2 with UTF and UCP, or a literal
// string.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glimpse::text::detail {

using Span = std::pair<std::size_t, std::size_t>;  // [begin, end) byte offsets

class Regex {
 public:
  // Throws ConfigError naming `where` when the pattern does not compile.
  Regex(std::string_view pattern, const std::string& where);

  // Appends the non-overlapping matches of the pattern in `text`, left to right, with the
  // handling of empty matches of onig's FindMatches (tokenizers/src/utils/onig.rs). Throws
  // InputError when the regex engine gives up on this input (match or memory limits).
  void find_all(std::string_view text, std::vector<Span>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::shared_ptr<void> code_;  // pcre2_code_8
  bool jit_ = false;
};

// A Split/Replace pattern as tokenizer.json gives it: {"String": s} or {"Regex": r}.
class Pattern {
 public:
  static Pattern literal(std::string text);
  static Pattern regex(std::string_view pattern, const std::string& where);

  // tokenizers/src/tokenizer/pattern.rs: Pattern::find_matches, reduced to the match spans
  // (an empty literal matches nothing).
  void find_all(std::string_view text, std::vector<Span>& out) const;
  // Every match replaced by `content` (NormalizedString::replace).
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

class JsonNode;
// {"String": s} or {"Regex": r} from tokenizer.json (tokenizers' SplitPattern / ReplacePattern).
Pattern make_pattern(const JsonNode& node);

// Rewrites an Oniguruma pattern for PCRE2: `\s` becomes the White_Space set that Oniguruma uses
// (PCRE2's UCP \s also matches U+180E), outside and inside character classes, and `\S` outside
// them. Everything else is passed through.
std::string onig_to_pcre2(std::string_view pattern);

}  // namespace glimpse::text::detail
