#include "text/pre_tokenizers.h"

#include <vector>

#include "text/byte_level.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace glimpse::text::detail {

void PreTokenizer::pre_tokenize(Pieces& pieces) const {
  Pieces out;
  out.reserve(pieces.size() * 4);
  for (auto& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(std::move(piece));
    } else {
      split(std::move(piece), out);
    }
  }
  pieces = std::move(out);
}

namespace {

SplitBehavior parse_behavior(const JsonNode& node) {
  const std::string name = node.as_string();
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  node.fail("unknown split behavior '" + name +
            "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

// tokenizers/src/pre_tokenizers/split.rs: Split.
class Split : public PreTokenizer {
 public:
  Split(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

 protected:
  void split(Piece&& piece, Pieces& out) const override {
    std::vector<Span> matches;
    pattern_.find_all(piece.text, matches);
    split_piece(std::move(piece), matches, invert_, behavior_, out);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on single characters chosen by a predicate (tokenizers' char-predicate Pattern).
template <class Pred>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}

 protected:
  void split(Piece&& piece, Pieces& out) const override {
    std::vector<Span> matches;
    char_matches(piece.text, pred_, matches);
    split_piece(std::move(piece), matches, false, behavior_, out);
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <class Pred>
std::unique_ptr<PreTokenizer> make_char_split(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplit<Pred>>(pred, behavior);
}

// tokenizers/src/pre_tokenizers/byte_level.rs: ByteLevel::pre_tokenize. Every piece gets the
// prefix space (not only the first), then the GPT-2 split, then the byte-to-char map.
class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, "ByteLevel") : nullptr) {}

 protected:
  void split(Piece&& piece, Pieces& out) const override {
    Piece p = std::move(piece);
    // NormalizedString::prepend does nothing to an empty string.
    if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') p.text.insert(0, " ");
    const std::size_t first = out.size();
    if (regex_) {
      std::vector<Span> matches;
      regex_->find_all(p.text, matches);
      split_piece(std::move(p), matches, false, SplitBehavior::Isolated, out);
    } else if (!p.text.empty()) {
      out.push_back(std::move(p));
    }
    for (std::size_t i = first; i < out.size(); ++i) out[i].text = bytes_to_chars(out[i].text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { First, Always, Never };

// tokenizers/src/pre_tokenizers/metaspace.rs: Metaspace::pre_tokenize.
class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {
    std::size_t i = 0;
    replacement_cp_ = next_code_point(replacement_, i);
  }

 protected:
  void split(Piece&& piece, Pieces& out) const override {
    Piece p;
    p.at_start = piece.at_start;
    p.text.reserve(piece.text.size() + replacement_.size());
    for (const char c : piece.text) {
      if (c == ' ') {
        p.text += replacement_;
      } else {
        p.text += c;
      }
    }
    const bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && !p.text.empty() &&
        (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_start))) {
      p.text.insert(0, replacement_);
    }
    if (!split_) {
      if (!p.text.empty()) out.push_back(std::move(p));
      return;
    }
    std::vector<Span> matches;
    const char32_t r = replacement_cp_;
    char_matches(
        p.text, [r](char32_t cp) { return cp == r; }, matches);
    split_piece(std::move(p), matches, false, SplitBehavior::MergedWithNext, out);
  }

 private:
  std::string replacement_;
  char32_t replacement_cp_ = 0;
  PrependScheme scheme_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}

 protected:
  void split(Piece&& piece, Pieces& out) const override {
    Pieces pieces;
    pieces.push_back(std::move(piece));
    for (const auto& p : parts_) p->pre_tokenize(pieces);
    for (auto& p : pieces) out.push_back(std::move(p));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// Rust regex's \w, spelled out for PCRE2 (whose UCP \w lacks marks).
constexpr const char* kWhitespacePattern =
    R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\s]+)";

std::string single_char(const JsonNode& node) {
  const std::string s = node.as_string();
  std::size_t i = 0;
  if (s.empty() || (next_code_point(s, i), i != s.size())) {
    node.fail("expected a single character, found '" + s + "'");
  }
  return s;
}

PrependScheme metaspace_scheme(const JsonNode& node) {
  if (const auto scheme = node.find("prepend_scheme")) {
    const std::string s = scheme->as_string();
    if (s == "first") return PrependScheme::First;
    if (s == "always") return PrependScheme::Always;
    if (s == "never") return PrependScheme::Never;
    scheme->fail("expected first, always or never, found '" + s + "'");
  }
  // Older files: add_prefix_space (default true).
  return node.get_bool("add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node) {
  node.require_object();
  const std::string type = node.get_string("type");
  if (type == "Split") {
    return std::make_unique<Split>(make_pattern(node.at("pattern")),
                                   parse_behavior(node.at("behavior")),
                                   node.get_bool("invert", false));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(node.get_bool("add_prefix_space", true),
                                       node.get_bool("use_regex", true));
  }
  if (type == "Metaspace") {
    const std::string replacement =
        node.find("replacement") ? single_char(node.at("replacement")) : "\xE2\x96\x81";
    return std::make_unique<Metaspace>(replacement, metaspace_scheme(node),
                                       node.get_bool("split", true));
  }
  if (type == "Digits") {
    const bool individual = node.get_bool("individual_digits", false);
    return make_char_split([](char32_t c) { return c >= '0' && c <= '9'; },
                           individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "Punctuation") {
    const auto behavior = node.find("behavior");
    return make_char_split([](char32_t c) { return is_punctuation(c); },
                           behavior ? parse_behavior(*behavior) : SplitBehavior::Isolated);
  }
  if (type == "Whitespace") {
    return std::make_unique<Split>(Pattern::regex(kWhitespacePattern, "Whitespace"),
                                   SplitBehavior::Removed, true);
  }
  if (type == "WhitespaceSplit") {
    return make_char_split([](char32_t c) { return is_whitespace(c); }, SplitBehavior::Removed);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.push_back(
        make_char_split([](char32_t c) { return is_whitespace(c); }, SplitBehavior::Removed));
    parts.push_back(
        make_char_split([](char32_t c) { return is_punctuation(c); }, SplitBehavior::Isolated));
    return std::make_unique<Sequence>(std::move(parts));
  }
  if (type == "CharDelimiterSplit") {
    const std::string d = single_char(node.at("delimiter"));
    std::size_t i = 0;
    const char32_t delimiter = next_code_point(d, i);
    return make_char_split([delimiter](char32_t c) { return c == delimiter; },
                           SplitBehavior::Removed);
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) parts.push_back(make_pre_tokenizer(list.at(i)));
    return std::make_unique<Sequence>(std::move(parts));
  }
  node.at("type").fail_unsupported(
      "unsupported pre-tokenizer type '" + type +
      "' (glimpse supports ByteLevel, Split, Metaspace, Digits, Punctuation, Whitespace, "
      "WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit, Sequence)");
}

}  // namespace glimpse::text::detail
