// The tokenizer.json components one by one, on small hand-written tokenizers whose expected
// output follows the tokenizers library's rules.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::text {
namespace {

using nlohmann::json;

// A BPE tokenizer whose vocabulary is `tokens` (ids in order) and merges `merges`.
json bpe_tokenizer(const std::vector<std::string>& tokens, const json& merges = json::array()) {
  json vocab = json::object();
  for (std::size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

Tokenizer make(const json& j, TokenizerOptions options = {}) {
  return Tokenizer::from_json_string(j.dump(), "test.json", options);
}

std::vector<std::string> tokens_of(const Tokenizer& t, const std::string& text,
                                   bool special = false) {
  return t.encode(text, special).tokens;
}

using Strings = std::vector<std::string>;

TEST(TokenizerBpeTest, MergesByRankAsStringsOrPairs) {
  const Strings vocab = {"a", "b", "c", "ab", "bc", "abc"};
  // "b c" ranks before "a b": abc -> a + bc, and no a+bc merge exists.
  auto strings = bpe_tokenizer(vocab, json::array({"b c", "a b"}));
  EXPECT_EQ(tokens_of(make(strings), "abc"), (Strings{"a", "bc"}));
  auto pairs =
      bpe_tokenizer(vocab, json::array({json::array({"a", "b"}), json::array({"ab", "c"})}));
  EXPECT_EQ(tokens_of(make(pairs), "abc"), (Strings{"abc"}));
  EXPECT_EQ(make(pairs).encode_ids("abcab"), (std::vector<TokenId>{5, 3}));
}

TEST(TokenizerBpeTest, EqualRanksMergeLeftmostFirst) {
  auto j = bpe_tokenizer({"a", "aa"}, json::array({"a a"}));
  EXPECT_EQ(tokens_of(make(j), "aaa"), (Strings{"aa", "a"}));
  EXPECT_EQ(tokens_of(make(j), "aaaa"), (Strings{"aa", "aa"}));
}

TEST(TokenizerBpeTest, UnknownCharactersAndFusing) {
  auto j = bpe_tokenizer({"<unk>", "a"});
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(make(j).encode_ids("xya"), (std::vector<TokenId>{0, 0, 1}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(make(j).encode_ids("xyaz"), (std::vector<TokenId>{0, 1, 0}));
  // Without an unk token unknown characters vanish, as in tokenizers.
  EXPECT_EQ(make(bpe_tokenizer({"a"})).encode_ids("xa"), (std::vector<TokenId>{0}));
}

TEST(TokenizerBpeTest, ByteFallback) {
  auto j = bpe_tokenizer({"<unk>", "a", "<0xC3>", "<0xA9>"});
  j["model"]["unk_token"] = "<unk>";
  j["model"]["byte_fallback"] = true;
  EXPECT_EQ(tokens_of(make(j), "a\xC3\xA9"), (Strings{"a", "<0xC3>", "<0xA9>"}));
  // A character whose bytes are not all in the vocabulary falls back to unk.
  EXPECT_EQ(make(j).encode_ids("\xC3\xB1"), (std::vector<TokenId>{0}));
  j["decoder"] = {{"type", "ByteFallback"}};
  EXPECT_EQ(make(j).decode({1, 2, 3}), "a\xC3\xA9");
}

TEST(TokenizerBpeTest, SubwordPrefixAndSuffix) {
  auto j = bpe_tokenizer({"a", "##b", "##c", "a##b"});
  j["model"]["continuing_subword_prefix"] = "##";
  j["model"]["merges"] = json::array({"a ##b"});
  // "a" + "##b" merges to "ab"... which must be in the vocabulary as "ab".
  EXPECT_THROW(make(j), FormatError);
  j["model"]["vocab"]["ab"] = 4;
  EXPECT_EQ(tokens_of(make(j), "abc"), (Strings{"ab", "##c"}));

  auto s = bpe_tokenizer({"a", "b</w>", "ab</w>"}, json::array({"a b</w>"}));
  s["model"]["end_of_word_suffix"] = "</w>";
  EXPECT_EQ(tokens_of(make(s), "ab"), (Strings{"ab</w>"}));
  s["decoder"] = {{"type", "BPEDecoder"}, {"suffix", "</w>"}};
  EXPECT_EQ(make(s).decode({2, 2}), "ab ab");
}

TEST(TokenizerBpeTest, IgnoreMerges) {
  auto j = bpe_tokenizer({"a", "b", "c", "ab", "abc"}, json::array({"a b"}));
  EXPECT_EQ(tokens_of(make(j), "abc"), (Strings{"ab", "c"}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(tokens_of(make(j), "abc"), (Strings{"abc"}));
}

json letters() {
  Strings v;
  for (char c = 'a'; c <= 'z'; ++c) v.emplace_back(1, c);
  for (const char* s : {" ", "\xE2\x96\x81", ".", ",", "!", "0", "1", "2", "3", "A", "B",
                        "\xC3\xA9", "\xCC\x81", "-"}) {
    v.emplace_back(s);
  }
  return bpe_tokenizer(v);
}

TEST(TokenizerNormalizerTest, UnicodeFormsLowercaseAndStrip) {
  auto j = letters();
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(tokens_of(make(j), "e\xCC\x81"), (Strings{"\xC3\xA9"}));
  j["normalizer"] = {{"type", "NFD"}};
  EXPECT_EQ(tokens_of(make(j), "\xC3\xA9"), (Strings{"e", "\xCC\x81"}));
  j["normalizer"] = {{"type", "NFKC"}};
  EXPECT_EQ(tokens_of(make(j), "\xEF\xBD\x81"), (Strings{"a"}));  // fullwidth a
  j["normalizer"] = {{"type", "NFKD"}};
  EXPECT_EQ(tokens_of(make(j), "\xC3\xA9"), (Strings{"e", "\xCC\x81"}));
  j["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(tokens_of(make(j), "AB"), (Strings{"a", "b"}));
  j["normalizer"] = {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}};
  EXPECT_EQ(tokens_of(make(j), "  a b \t"), (Strings{"a", " ", "b"}));
  j["normalizer"] = {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}};
  EXPECT_EQ(tokens_of(make(j), " a "), (Strings{" ", "a"}));
  j["normalizer"] = {{"type", "StripAccents"}};
  EXPECT_EQ(tokens_of(make(j), "e\xCC\x81"), (Strings{"e"}));
}

TEST(TokenizerNormalizerTest, PrependReplaceSequence) {
  auto j = letters();
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  EXPECT_EQ(tokens_of(make(j), "a b"), (Strings{"\xE2\x96\x81", "a", "\xE2\x96\x81", "b"}));
  EXPECT_TRUE(make(j).encode("").ids.empty());  // Prepend leaves empty text alone
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]+"}}}, {"content", "0"}};
  EXPECT_EQ(tokens_of(make(j), "a123b"), (Strings{"a", "0", "b"}));
}

// Runs `pre` on `text` with a model that returns each piece whole (ignore_merges and a vocabulary
// holding every piece), so the tokens are the pre-tokenizer's pieces.
Strings pieces(const json& pre, const std::string& text, const Strings& expected_vocab) {
  auto j = bpe_tokenizer(expected_vocab);
  j["model"]["ignore_merges"] = true;
  j["pre_tokenizer"] = pre;
  return make(j).encode(text).tokens;
}

TEST(TokenizerPreTokenizerTest, SplitBehaviours) {
  const Strings v = {"a", "b", "-", "a-", "-b", "--", "a--", "--b", "a-b"};
  auto split = [](const char* behavior, bool invert = false) {
    return json{{"type", "Split"},
                {"pattern", {{"String", "-"}}},
                {"behavior", behavior},
                {"invert", invert}};
  };
  EXPECT_EQ(pieces(split("Removed"), "a-b", v), (Strings{"a", "b"}));
  EXPECT_EQ(pieces(split("Isolated"), "a-b", v), (Strings{"a", "-", "b"}));
  EXPECT_EQ(pieces(split("MergedWithPrevious"), "a-b", v), (Strings{"a-", "b"}));
  EXPECT_EQ(pieces(split("MergedWithNext"), "a-b", v), (Strings{"a", "-b"}));
  EXPECT_EQ(pieces(split("Contiguous"), "a--b", v), (Strings{"a", "--", "b"}));
  EXPECT_EQ(pieces(split("MergedWithPrevious"), "a--b", v), (Strings{"a-", "-", "b"}));
  // Inverted: the non-matches are the delimiters.
  EXPECT_EQ(pieces(split("Removed", true), "a-b", v), (Strings{"-"}));
  json regex = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+"}}}, {"behavior", "Isolated"}};
  EXPECT_EQ(pieces(regex, "a-b", v), (Strings{"a", "-", "b"}));
}

TEST(TokenizerPreTokenizerTest, MetaspaceSchemes) {
  const std::string u = "\xE2\x96\x81";
  const Strings v = {u + "a", u + "b", "a", "b", u, "<s>"};
  json m = {{"type", "Metaspace"}, {"replacement", u}, {"prepend_scheme", "always"}};
  EXPECT_EQ(pieces(m, "a b", v), (Strings{u + "a", u + "b"}));
  m["prepend_scheme"] = "never";
  EXPECT_EQ(pieces(m, "a b", v), (Strings{"a", u + "b"}));
  m["prepend_scheme"] = "first";
  auto j = bpe_tokenizer(v);
  j["model"]["ignore_merges"] = true;
  j["pre_tokenizer"] = m;
  j["added_tokens"] = {{{"id", 5}, {"content", "<s>"}, {"special", true}, {"normalized", false}}};
  // Only the piece at the start of the text gets the prefix.
  EXPECT_EQ(make(j).encode("a<s>b").tokens, (Strings{u + "a", "<s>", "b"}));
  m["split"] = false;
  m["prepend_scheme"] = "always";
  auto k = bpe_tokenizer({u + "a" + u + "b"});
  k["model"]["ignore_merges"] = true;
  k["pre_tokenizer"] = m;
  EXPECT_EQ(make(k).encode("a b").tokens, (Strings{u + "a" + u + "b"}));
  // The legacy add_prefix_space key.
  json legacy = {{"type", "Metaspace"}, {"replacement", u}, {"add_prefix_space", false}};
  EXPECT_EQ(pieces(legacy, "a b", v), (Strings{"a", u + "b"}));
}

TEST(TokenizerPreTokenizerTest, DigitsPunctuationWhitespace) {
  const Strings v = {"1", "2", "12", "a", "b", "ab", "!", "?", "!?", " ", "a b"};
  EXPECT_EQ(pieces({{"type", "Digits"}, {"individual_digits", true}}, "a12", v),
            (Strings{"a", "1", "2"}));
  EXPECT_EQ(pieces({{"type", "Digits"}, {"individual_digits", false}}, "a12b", v),
            (Strings{"a", "12", "b"}));
  EXPECT_EQ(pieces({{"type", "Punctuation"}}, "ab!?", v), (Strings{"ab", "!", "?"}));
  EXPECT_EQ(pieces({{"type", "Punctuation"}, {"behavior", "Contiguous"}}, "ab!?", v),
            (Strings{"ab", "!?"}));
  EXPECT_EQ(pieces({{"type", "Whitespace"}}, "ab  !?a", v), (Strings{"ab", "!?", "a"}));
  EXPECT_EQ(pieces({{"type", "WhitespaceSplit"}}, " ab \t!? ", v), (Strings{"ab", "!?"}));
  EXPECT_EQ(pieces({{"type", "BertPreTokenizer"}}, "ab !?", v), (Strings{"ab", "!", "?"}));
  EXPECT_EQ(
      pieces({{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "WhitespaceSplit"}}, {{"type", "Digits"}, {"individual_digits", true}}}}},
             "a12 b", v),
      (Strings{"a", "1", "2", "b"}));
}

TEST(TokenizerPreTokenizerTest, ByteLevelWithAndWithoutRegex) {
  // Ġ is the byte-level character for a space.
  const Strings v = {"Hello", "\xC4\xA0world", "\xC4\xA0Hello", "!", "Hello\xC4\xA0world!"};
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(pieces(bl, "Hello world!", v), (Strings{"Hello", "\xC4\xA0world", "!"}));
  bl["add_prefix_space"] = true;
  EXPECT_EQ(pieces(bl, "Hello world!", v), (Strings{"\xC4\xA0Hello", "\xC4\xA0world", "!"}));
  bl["add_prefix_space"] = false;
  bl["use_regex"] = false;
  EXPECT_EQ(pieces(bl, "Hello world!", v), (Strings{"Hello\xC4\xA0world!"}));
}

TEST(TokenizerAddedTokensTest, FlagsAndLongestMatch) {
  auto j = letters();
  auto add = [&](int id, const std::string& content, json extra = json::object()) {
    json t = {{"id", id}, {"content", content}, {"special", true}, {"normalized", false}};
    t.update(extra);
    j["added_tokens"].push_back(t);
    j["model"]["vocab"][content] = id;
  };
  add(100, "<x>");
  add(101, "<x><y>");
  add(102, "<l>", {{"lstrip", true}});
  add(103, "<r>", {{"rstrip", true}});
  add(104, "<w>", {{"single_word", true}});
  add(105, "ab", {{"special", false}, {"normalized", true}});
  j["normalizer"] = {{"type", "Lowercase"}};
  const auto t = make(j);
  EXPECT_EQ(t.encode("a<x><y>b").tokens, (Strings{"a", "<x><y>", "b"}));  // longest first
  EXPECT_EQ(t.encode("a  <l>b").tokens, (Strings{"a", "  <l>", "b"}));
  EXPECT_EQ(t.encode("a<r>  b").tokens, (Strings{"a", "<r>  ", "b"}));
  EXPECT_EQ(t.encode("a <w> b").ids, (std::vector<TokenId>{0, 26, 104, 26, 1}));
  // Inside a word, a single_word token does not match ('<' and '>' are unknown and vanish).
  EXPECT_EQ(t.encode("a<w>b").ids, (std::vector<TokenId>{0, 22, 1}));
  // A normalized token matches the normalized text.
  EXPECT_EQ(t.encode("xAB").tokens, (Strings{"x", "ab"}));
  EXPECT_EQ(t.token_to_id("<x><y>"), 101);
  EXPECT_TRUE(t.is_special(100));
  EXPECT_FALSE(t.is_special(105));
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  EXPECT_EQ(t.decode({0, 100, 105}, skip), "a ab");  // no decoder: tokens joined by spaces
}

TEST(TokenizerPostProcessorTest, TemplatesAndRoberta) {
  auto j = letters();
  j["model"]["vocab"]["<s>"] = 50;
  j["model"]["vocab"]["</s>"] = 51;
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", "<s> $A </s>"},
                         {"pair", "<s> $A </s> $B:1 </s>:1"},
                         {"special_tokens",
                          {{"<s>", {{"id", "<s>"}, {"ids", {50}}, {"tokens", {"<s>"}}}},
                           {"</s>", {{"id", "</s>"}, {"ids", {51}}, {"tokens", {"</s>"}}}}}}};
  EXPECT_EQ(make(j).encode("ab", true).tokens, (Strings{"<s>", "a", "b", "</s>"}));
  EXPECT_EQ(make(j).encode("ab", false).tokens, (Strings{"a", "b"}));
  j["post_processor"] = {{"type", "RobertaProcessing"},
                         {"sep", {"</s>", 51}},
                         {"cls", {"<s>", 50}},
                         {"trim_offsets", true},
                         {"add_prefix_space", false}};
  EXPECT_EQ(make(j).encode_ids("a", true), (std::vector<TokenId>{50, 0, 51}));
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}},
        {{"type", "BertProcessing"}, {"sep", {"</s>", 51}}, {"cls", {"<s>", 50}}}}}};
  EXPECT_EQ(make(j).encode_ids("a", true), (std::vector<TokenId>{50, 0, 51}));
}

TEST(TokenizerDecoderTest, ChainOfDecoders) {
  const std::string u = "\xE2\x96\x81";
  auto j = bpe_tokenizer({u + "Hello", u + "world", "<0xE4>", "<0xB8>", "<0x96>", "<0xFF>", u});
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", u}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  const auto t = make(j);
  EXPECT_EQ(t.decode({0, 1}), "Hello world");
  EXPECT_EQ(t.decode({0, 2, 3, 4}), "Hello\xE4\xB8\x96");
  // An invalid byte run gives one U+FFFD per byte.
  EXPECT_EQ(t.decode({2, 3, 5}), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({6}), "");
  EXPECT_EQ(t.decode({0, 999, 1}), "Hello world");  // unknown ids are skipped

  j["decoder"] = {{"type", "Metaspace"}, {"replacement", u}, {"prepend_scheme", "always"}};
  EXPECT_EQ(make(j).decode({0, 1}), "Hello world");
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", u}, {"prepend_scheme", "never"}};
  EXPECT_EQ(make(j).decode({0, 1}), " Hello world");
}

TEST(TokenizerDecoderTest, ByteLevelIsLossyAndCleanUpIsOptional) {
  auto j =
      bpe_tokenizer({"\xC3\xA4", "\xC2\xBD", "a", "\xC4\xA0.", "\xC4\xA0"});  // ä ½: bytes E4 BD
  j["decoder"] = {{"type", "ByteLevel"}};
  const auto t = make(j);
  EXPECT_EQ(t.decode({0}), "\xEF\xBF\xBD");  // a lone lead byte
  EXPECT_EQ(t.decode({2, 3}), "a .");
  DecodeOptions clean;
  clean.clean_up_tokenization_spaces = true;
  EXPECT_EQ(t.decode({2, 3}, clean), "a.");
}

TEST(TokenizerTest, LegacyRewriteOnlyTouchesLlamaNormalizers) {
  auto j = letters();
  TokenizerOptions non_legacy;
  non_legacy.legacy = false;
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(make(j, non_legacy).encode("ab").tokens, (Strings{"a", "b"}));
}

}  // namespace
}  // namespace glimpse::text
