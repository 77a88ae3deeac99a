// Streaming decode: the pieces concatenate to the full decode and never split a UTF-8 character.
#include "glimpse/text/incremental_decoder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/json_util.h"
#include "test_util.h"
#include "text/text_test_util.h"

namespace glimpse::text {
namespace {

using nlohmann::json;

// A byte-level tokenizer that knows only the 256 single bytes, so every multi-byte character is
// split across tokens.
Tokenizer bytes_tokenizer() {
  json vocab = json::object();
  std::vector<std::string> chars;
  // GPT-2's byte map, built here independently of the library.
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = printable ? b : 256 + n++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[s] = b;
  }
  json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"added_tokens",
             {{{"id", 256}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}}}}};
  vocab["<|end|>"] = 256;
  return Tokenizer::from_json_string(j.dump());
}

void expect_stream(const Tokenizer& tok, const std::vector<TokenId>& ids,
                   DecodeOptions options = {}) {
  IncrementalDecoder stream(tok, options);
  std::string all;
  for (const TokenId id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_FALSE(core::first_invalid_utf8(piece).has_value()) << piece;
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "a replacement char leaked";
    all += piece;
  }
  all += stream.flush();
  EXPECT_EQ(all, tok.decode(ids, options));
}

TEST(IncrementalDecoderTest, MultiByteCharactersSplitAcrossTokens) {
  const auto tok = bytes_tokenizer();
  const std::string text =
      "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80!";  // héllo 世界 😀!
  const auto ids = tok.encode_ids(text);
  ASSERT_EQ(ids.size(), text.size());  // one token per byte
  IncrementalDecoder stream(tok);
  std::vector<std::string> pieces;
  for (const TokenId id : ids) pieces.push_back(stream.push(id));
  // The lead byte of é gives nothing; its continuation byte gives the whole character.
  EXPECT_EQ(pieces[1], "");
  EXPECT_EQ(pieces[2], "\xC3\xA9");
  EXPECT_EQ(pieces[17], "\xF0\x9F\x98\x80");
  expect_stream(tok, ids);
}

TEST(IncrementalDecoderTest, FlushEmitsAnIncompleteTailAndSkipsSpecialTokens) {
  const auto tok = bytes_tokenizer();
  IncrementalDecoder stream(tok);
  EXPECT_EQ(stream.push(0x61), "a");
  EXPECT_EQ(stream.push(0xE4), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  auto ids = tok.encode_ids("x<|end|>y");
  EXPECT_EQ(ids.size(), 3u);
  expect_stream(tok, ids, skip);
  expect_stream(tok, ids);
  // Many ids that produce nothing keep each step cheap and still stream correctly.
  std::vector<TokenId> many(200, 256);
  many.push_back(0x62);
  expect_stream(tok, many, skip);
}

TEST(IncrementalDecoderGolden, SentencepieceStyleByteFallbackAndMetaspace) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto tok =
      Tokenizer::load(test::fixtures_dir() + "/tokenizers/llama-style-spm-bpe/tokenizer.json");
  // Byte-fallback tokens (<0xF0> <0x9F> ...) and "▁" spaces that depend on position.
  for (const std::string text :
       {"Hello world, how are you?", "emoji \xF0\x9F\x98\x80 and \xE0\xA4\xA8", "  two  spaces",
        "tab\there"}) {
    SCOPED_TRACE(text);
    expect_stream(tok, tok.encode_ids(text, true));
  }
  const auto qwen = Tokenizer::load(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  if (!test_util::sanitizer_build()) {
    const auto llava = Tokenizer::load(test::fixtures_dir() + "/tiny-llava-1.5/model");
    const auto ids =
        llava.encode_ids("USER: <image>\nWhat is it? ASSISTANT: A caf\xC3\xA9 \xE4\xB8\x96", true);
    expect_stream(llava, ids);
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    expect_stream(llava, ids, skip);
  }
  expect_stream(qwen,
                qwen.encode_ids("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C"));
}

}  // namespace
}  // namespace glimpse::text
