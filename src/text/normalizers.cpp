#include "text/normalizers.h"

#include <vector>

#include "text/regex.h"
#include "text/unicode.h"

namespace glimpse::text::detail {
namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override { unicode_normalize_in_place(text, form_); }

 private:
  NormalForm form_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_lower(text); }
};

// tokenizers/src/normalizers/prepend.rs: only a non-empty string gets the prefix.
class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = pattern_.replace_all(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

// tokenizers/src/normalizers/strip.rs: Strip (char::is_whitespace on either side).
class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    std::size_t begin = 0, end = text.size();
    if (left_) {
      std::size_t i = 0;
      while (i < text.size()) {
        const std::size_t at = i;
        if (!is_whitespace(next_code_point(text, i))) {
          begin = at;
          break;
        }
        begin = i;
      }
    }
    if (right_) {
      // Walk forward, remembering where the last non-whitespace character ends.
      std::size_t i = begin, last = begin;
      while (i < end) {
        if (!is_whitespace(next_code_point(text, i))) last = i;
      }
      end = last;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
      const std::size_t begin = i;
      if (!is_nonspacing_mark(next_code_point(text, i))) out.append(text, begin, i - begin);
    }
    text = std::move(out);
  }
};

// tokenizers/src/normalizers/bert.rs: BertNormalizer.
class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_(chinese),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
      const char32_t cp = next_code_point(text, i);
      if (clean_text_) {
        if (cp == 0 || cp == 0xFFFD) continue;
        if (cp == '\t' || cp == '\n' || cp == '\r') {
          out += ' ';
          continue;
        }
        if (is_control(cp)) continue;
        if (is_whitespace(cp)) {
          out += ' ';
          continue;
        }
      }
      if (chinese_ && is_cjk_ideograph(cp)) {
        out += ' ';
        append_utf8(out, cp);
        out += ' ';
        continue;
      }
      append_utf8(out, cp);
    }
    if (strip_accents_) {
      out = unicode_normalize(out, NormalForm::NFD);
      StripAccents().normalize(out);
    }
    if (lowercase_) out = to_lower(out);
    text = std::move(out);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node) {
  node.require_object();
  const std::string type = node.get_string("type");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(node.get_string("prepend"));
  if (type == "Replace") {
    return std::make_unique<Replace>(make_pattern(node.at("pattern")), node.get_string("content"));
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(node.get_bool("strip_left", true),
                                   node.get_bool("strip_right", true));
  }
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "BertNormalizer") {
    const bool lowercase = node.get_bool("lowercase", true);
    const auto strip = node.find("strip_accents");
    return std::make_unique<BertNormalizer>(node.get_bool("clean_text", true),
                                            node.get_bool("handle_chinese_chars", true),
                                            strip ? strip->as_bool() : lowercase, lowercase);
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) parts.push_back(make_normalizer(list.at(i)));
    return std::make_unique<Sequence>(std::move(parts));
  }
  node.at("type").fail_unsupported(
      "unsupported normalizer type '" + type +
      "' (glimpse supports NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, "
      "StripAccents, BertNormalizer, Sequence)");
}

}  // namespace glimpse::text::detail
