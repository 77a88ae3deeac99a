// Malformed tokenizer files and bad input: clear glimpse errors naming the file and key, never a
// crash or a silent fallback.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"
#include "test_util.h"
#include "text/text_test_util.h"

namespace glimpse::text {
namespace {

using nlohmann::json;

json minimal() {
  return {{"model",
           {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

// The message of the exception `fn` throws as E (fails the test when it throws nothing or
// something else).
template <class E, class Fn>
std::string message_of(Fn fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

std::string load_error_format(const json& j) {
  return message_of<FormatError>([&] { Tokenizer::from_json_string(j.dump(), "bad.json"); });
}

TEST(TokenizerErrorsTest, MissingModel) {
  json j = minimal();
  j.erase("model");
  const auto m = load_error_format(j);
  EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
  EXPECT_NE(m.find("model"), std::string::npos) << m;
}

TEST(TokenizerErrorsTest, BadMerges) {
  json j = minimal();
  j["model"]["merges"] = {"a b c"};
  auto m = load_error_format(j);
  EXPECT_NE(m.find("model.merges[0]"), std::string::npos) << m;
  j["model"]["merges"] = {42};
  m = load_error_format(j);
  EXPECT_NE(m.find("model.merges[0]"), std::string::npos) << m;
  j["model"]["merges"] = {"a x"};
  m = load_error_format(j);
  EXPECT_NE(m.find("'x' is not in the vocabulary"), std::string::npos) << m;
  j["model"]["merges"] = json::array({json::array({"b", "a"})});  // "ba" is not in the vocabulary
  m = load_error_format(j);
  EXPECT_NE(m.find("'ba'"), std::string::npos) << m;
  j["model"]["merges"] = "a b";
  m = load_error_format(j);
  EXPECT_NE(m.find("expected an array"), std::string::npos) << m;
}

TEST(TokenizerErrorsTest, BadVocabularyAndTypes) {
  json j = minimal();
  j["model"]["vocab"]["c"] = -3;
  EXPECT_NE(load_error_format(j).find("'c'"), std::string::npos);
  j = minimal();
  j["model"]["vocab"] = {"a", "b"};
  EXPECT_NE(load_error_format(j).find("model.vocab"), std::string::npos);
  j = minimal();
  j["normalizer"] = {{"type", 3}};
  EXPECT_NE(load_error_format(j).find("normalizer.type"), std::string::npos);
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Glob", "*"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(load_error_format(j).find("pre_tokenizer.pattern"), std::string::npos);
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}};
  EXPECT_NE(load_error_format(j).find("Sideways"), std::string::npos);
  j = minimal();
  j["post_processor"] = {
      {"type", "TemplateProcessing"}, {"single", "<s> $A"}, {"special_tokens", json::object()}};
  EXPECT_NE(load_error_format(j).find("'<s>' is missing"), std::string::npos);
  j = minimal();
  j["added_tokens"] = {{{"content", "<x>"}}};
  EXPECT_NE(load_error_format(j).find("added_tokens[0]"), std::string::npos);
}

TEST(TokenizerErrorsTest, UnknownComponentsAreUnsupported) {
  for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) {
    json j = minimal();
    j[key] = {{"type", "Sequence"},
              {"normalizers", {{{"type", "Frobnicate"}}}},
              {"pretokenizers", {{{"type", "Frobnicate"}}}},
              {"processors", {{{"type", "Frobnicate"}}}},
              {"decoders", {{{"type", "Frobnicate"}}}}};
    const auto m =
        message_of<UnsupportedError>([&] { Tokenizer::from_json_string(j.dump(), "odd.json"); });
    EXPECT_NE(m.find("Frobnicate"), std::string::npos) << m;
    EXPECT_NE(m.find("odd.json"), std::string::npos) << m;
    EXPECT_NE(m.find(std::string(key) + "."), std::string::npos) << m;
  }
  json j = minimal();
  j["model"]["type"] = "WordPiece";
  const auto m =
      message_of<UnsupportedError>([&] { Tokenizer::from_json_string(j.dump(), "wp.json"); });
  EXPECT_NE(m.find("WordPiece"), std::string::npos) << m;
}

TEST(TokenizerErrorsTest, InvalidRegexIsAConfigError) {
  json j = minimal();
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  const auto m = message_of<ConfigError>([&] { Tokenizer::from_json_string(j.dump(), "re.json"); });
  EXPECT_NE(m.find("pre_tokenizer.pattern.Regex"), std::string::npos) << m;
}

TEST(TokenizerErrorsTest, NotJsonOrNotUtf8) {
  message_of<FormatError>([] { Tokenizer::from_json_string("{\"model\": ", "trunc.json"); });
  message_of<FormatError>([] { Tokenizer::from_json_string("{\"a\": \"\xff\"}", "bytes.json"); });
  message_of<FormatError>([] { Tokenizer::from_json_string("[]", "array.json"); });
}

TEST(TokenizerErrorsTest, InvalidUtf8TextIsAnInputError) {
  const auto t = Tokenizer::from_json_string(minimal().dump());
  const auto m = message_of<InputError>([&] { t.encode("ab\xC3"); });
  EXPECT_NE(m.find("UTF-8"), std::string::npos) << m;
  message_of<InputError>([&] { t.encode("\xED\xA0\x80"); });  // a surrogate
}

TEST(TokenizerErrorsTest, MissingFilesAndFolders) {
  test::TempDir dir;
  auto m = message_of<InputError>([&] { Tokenizer::load(dir.path().string()); });
  EXPECT_NE(m.find("tokenizer.json"), std::string::npos) << m;
  message_of<InputError>([&] { Tokenizer::load(dir.file("nope.json")); });
  std::ofstream(dir.file("notes.txt")) << "hello";
  message_of<InputError>([&] { Tokenizer::load(dir.file("notes.txt")); });
  std::ofstream(dir.file("vocab.json")) << "{\"a\": 0}";
  m = message_of<InputError>([&] { Tokenizer::load(dir.file("vocab.json")); });
  EXPECT_NE(m.find("merges.txt"), std::string::npos) << m;
  std::ofstream(dir.file("merges.txt")) << "#version: 0.2\na b\n";
  m = message_of<FormatError>([&] { Tokenizer::load(dir.path().string()); });
  EXPECT_NE(m.find("merges.txt: line 2"), std::string::npos) << m;
}

TEST(TokenizerErrorsTest, GarbageSentencepieceModel) {
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  test::TempDir dir;
  std::ofstream(dir.file("tokenizer.model"), std::ios::binary) << "not a protobuf \x01\x02";
  const auto m = message_of<FormatError>([&] { Tokenizer::load(dir.path().string()); });
  EXPECT_NE(m.find("tokenizer.model"), std::string::npos) << m;
}

TEST(TokenizerSpeedTest, HugeWordsAndWhitespaceRunsAreNotQuadratic) {
  // A byte-level tokenizer with the Qwen2 pre-tokenizer and a few merges. Each input is 1 MB;
  // a quadratic step would take minutes here (no timing is asserted; ctest's timeout would).
  json vocab = json::object();
  const std::string chars[] = {"a", "b", "\xC4\xA0", "\xC4\x8A"};  // a, b, Ġ (space), Ċ (newline)
  for (std::size_t i = 0; i < 4; ++i) vocab[chars[i]] = i;
  vocab["ab"] = 4;
  vocab["abab"] = 5;
  vocab["\xC4\xA0\xC4\xA0"] = 6;
  json j = {
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab ab", "\xC4\xA0 \xC4\xA0"}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}}};
  const auto t = Tokenizer::from_json_string(j.dump());
  std::string word;
  for (int i = 0; i < 1 << 19; ++i) word += "ab";
  auto ids = t.encode_ids(word);
  EXPECT_EQ(ids.size(), std::size_t{1} << 18);  // all "abab"
  EXPECT_EQ(t.decode(ids), word);
  const std::string spaces(1 << 20, ' ');
  ids = t.encode_ids(spaces);
  EXPECT_EQ(ids.size(), std::size_t{1} << 19);
  // (2^20 - 1) spaces, " ab", "\n", 2^20 spaces.
  EXPECT_EQ(t.encode_ids(spaces + "ab\n" + spaces).size(), (std::size_t{1} << 20) + 3);
}

}  // namespace
}  // namespace glimpse::text
