#include "text/decoders.h"

#include "text/byte_level.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace glimpse::text::detail {
namespace {

// tokenizers/src/pre_tokenizers/byte_level.rs: ByteLevel::decode_chain. A token with a
// character outside the byte map keeps its own bytes; the result is decoded lossily.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      const std::size_t mark = bytes.size();
      bool ok = true;
      std::size_t i = 0;
      while (i < t.size()) {
        const int b = char_byte(next_code_point(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes += static_cast<char>(b);
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xAB>" -> 0xAB (u8::from_str_radix on the two characters, which also takes "+A").
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  const int lo = hex_digit(t[4]);
  if (lo < 0) return -1;
  if (t[3] == '+') return lo;
  const int hi = hex_digit(t[3]);
  return hi < 0 ? -1 : hi * 16 + lo;
}

// tokenizers/src/decoders/byte_fallback.rs: runs of <0xXX> tokens become their UTF-8 text, or
// one U+FFFD per byte when they are not valid UTF-8.
class ByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (!core_valid(pending)) {
        for (std::size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      } else {
        out.push_back(pending);
      }
      pending.clear();
    };
    for (auto& t : tokens) {
      const int b = byte_token(t);
      if (b >= 0) {
        pending += static_cast<char>(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static bool core_valid(const std::string& s) { return utf8_lossy(s) == s; }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// tokenizers/src/decoders/strip.rs: removes up to `start` leading and `stop` trailing
// occurrences of `content` from every token.
class Strip : public Decoder {
 public:
  Strip(char32_t content, std::size_t start, std::size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::size_t> bounds;  // byte offset of every character, then the end
      std::vector<char32_t> chars;
      std::size_t i = 0;
      while (i < t.size()) {
        bounds.push_back(i);
        chars.push_back(next_code_point(t, i));
      }
      bounds.push_back(t.size());
      std::size_t start_cut = 0;
      for (std::size_t k = 0; k < chars.size() && k < start_; ++k) {
        if (chars[k] != content_) break;
        start_cut = k + 1;
      }
      std::size_t stop_cut = chars.size();
      for (std::size_t k = 0; k < stop_ && k < chars.size(); ++k) {
        const std::size_t index = chars.size() - k - 1;
        if (chars[index] != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      t = t.substr(bounds[start_cut], bounds[stop_cut] - bounds[start_cut]);
    }
  }

 private:
  char32_t content_;
  std::size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// tokenizers/src/decoders/metaspace.rs (Metaspace::decode_chain): the replacement becomes a
// space, except in the first token when a prefix was prepended (all of them there, as upstream).
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepends)
      : replacement_(replacement), prepends_(prepends) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      const std::string& t = tokens[k];
      std::string out;
      out.reserve(t.size());
      std::size_t i = 0;
      while (i < t.size()) {
        const std::size_t begin = i;
        const char32_t cp = next_code_point(t, i);
        if (cp == replacement_) {
          if (!(k == 0 && prepends_)) out += ' ';
        } else {
          out.append(t, begin, i - begin);
        }
      }
      tokens[k] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool prepends_;
};

// tokenizers/src/decoders/bpe.rs: the end-of-word suffix becomes a space (nothing at the end).
class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const Pattern p = Pattern::literal(suffix_);
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      tokens[k] = p.replace_all(tokens[k], k + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

char32_t single_code_point(const JsonNode& node) {
  const std::string s = node.as_string();
  std::size_t i = 0;
  if (s.empty()) node.fail("expected a single character, found an empty string");
  const char32_t cp = next_code_point(s, i);
  if (i != s.size()) node.fail("expected a single character, found '" + s + "'");
  return cp;
}

std::size_t count(const JsonNode& node, std::string_view key) {
  const std::int64_t v = node.get_int(key, 0);
  if (v < 0) node.at(key).fail("expected a non-negative integer");
  return static_cast<std::size_t>(v);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const JsonNode& node) {
  node.require_object();
  const std::string type = node.get_string("type");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    return std::make_unique<Strip>(single_code_point(node.at("content")), count(node, "start"),
                                   count(node, "stop"));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(make_pattern(node.at("pattern")),
                                            node.get_string("content"));
  }
  if (type == "Metaspace") {
    const char32_t replacement =
        node.find("replacement") ? single_code_point(node.at("replacement")) : 0x2581;
    bool prepends = node.get_bool("add_prefix_space", true);
    if (const auto scheme = node.find("prepend_scheme")) {
      const std::string s = scheme->as_string();
      if (s != "first" && s != "always" && s != "never") {
        scheme->fail("expected first, always or never, found '" + s + "'");
      }
      prepends = s != "never";
    }
    return std::make_unique<MetaspaceDecoder>(replacement, prepends);
  }
  if (type == "BPEDecoder") return std::make_unique<BpeDecoder>(node.get_string("suffix", "</w>"));
  if (type == "Sequence") {
    const JsonNode list = node.at("decoders");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) parts.push_back(make_decoder(list.at(i)));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  node.at("type").fail_unsupported(
      "unsupported decoder type '" + type +
      "' (glimpse supports ByteLevel, ByteFallback, Metaspace, Fuse, Strip, Replace, BPEDecoder, "
      "Sequence)");
}

}  // namespace glimpse::text::detail
