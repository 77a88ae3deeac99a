// Tokenizer goldens: /work/shared/fixtures/tokenizers/*/goldens.json (ids, tokens and decoded text
// from a transformers.js port, cross-checked against transformers' slow tokenizers) and the
// input_ids of every tiny-model case.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/text/tokenizer.h"
#include "test_util.h"
#include "text/text_test_util.h"

namespace glimpse::text {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::string fixture(const std::string& rel) {
  return test::fixtures_dir() + "/" + rel;
}

// Checks every golden case: ids (under `ids_key`), tokens when `check_tokens`, and decoding.
void check_goldens(const Tokenizer& tok, const json& goldens, const std::string& ids_key,
                   bool check_tokens) {
  const bool add_special = goldens.at("add_special_tokens").get<bool>();
  ASSERT_GT(goldens.at("cases").size(), 40u);
  for (const auto& c : goldens.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: " + text);
    const Encoding e = tok.encode(text, add_special);
    EXPECT_EQ(e.ids, c.at(ids_key).get<std::vector<TokenId>>());
    if (check_tokens) {
      EXPECT_EQ(e.tokens, c.at("tokens").get<std::vector<std::string>>());
    }
    EXPECT_EQ(tok.decode(c.at(ids_key).get<std::vector<TokenId>>()),
              c.at("decoded").get<std::string>());
    EXPECT_EQ(tok.encode_ids(text, add_special), e.ids);
  }
}

TEST(TokenizerJsonGolden, QwenRealVocabulary) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto tok = Tokenizer::load(fixture("tokenizers/qwen/tokenizer.json"));
  EXPECT_EQ(tok.kind(), "tokenizer.json");
  check_goldens(tok, read_json(fixture("tokenizers/qwen/goldens.json")), "ids", true);
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok.id_to_token(151645), "<|im_end|>");
  EXPECT_TRUE(tok.is_special(151645));
  EXPECT_FALSE(tok.is_special(9707));
  EXPECT_EQ(tok.vocab_size(), 151669u);
}

TEST(TokenizerJsonGolden, LlamaStyleLegacy) {
  GLIMPSE_REQUIRE_FIXTURES();
  // tokenizer_config.json says legacy=true; tokenizer.json already encodes that behaviour.
  const auto dir = fixture("tokenizers/llama-style-spm-bpe");
  const auto goldens = read_json(dir + "/goldens.json");
  check_goldens(Tokenizer::load(dir + "/tokenizer.json"), goldens, "ids", true);
  TokenizerOptions legacy;
  legacy.legacy = true;
  check_goldens(Tokenizer::load(dir, legacy), goldens, "ids", true);
}

TEST(TokenizerJsonGolden, LlamaStyleNonLegacy) {
  GLIMPSE_REQUIRE_FIXTURES();
  TokenizerOptions options;
  options.legacy = false;
  const auto dir = fixture("tokenizers/llama-style-spm-bpe");
  const auto tok = Tokenizer::load(dir + "/tokenizer.json", options);
  const auto goldens = read_json(dir + "/goldens.json");
  for (const auto& c : goldens.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: " + text);
    EXPECT_EQ(tok.encode_ids(text, true), c.at("ids_legacy_false").get<std::vector<TokenId>>());
  }
  // The two settings differ exactly on text that follows a special token.
  EXPECT_EQ(tok.encode("first</s>second", true).tokens,
            (std::vector<std::string>{"<s>",
                                      "\xE2\x96\x81"
                                      "first",
                                      "</s>", "second"}));
}

TEST(TokenizerJsonGolden, TinyQwenBothFormats) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto goldens = read_json(fixture("tokenizers/tiny-qwen/goldens.json"));
  const auto model = fixture("tiny-qwen2-vl/model");
  const auto fast = Tokenizer::load(model + "/tokenizer.json");
  check_goldens(fast, goldens, "ids", true);
  const auto slow = Tokenizer::load(model + "/vocab.json");
  EXPECT_EQ(slow.kind(), "vocab.json+merges.txt");
  check_goldens(slow, goldens, "ids", true);
  // A folder prefers tokenizer.json.
  EXPECT_EQ(Tokenizer::load(model).kind(), "tokenizer.json");
}

// The unpadded input_ids of each row of a case.
std::vector<std::vector<TokenId>> case_input_ids(const std::string& model_dir,
                                                 const std::string& name) {
  const auto file =
      core::SafetensorsFile::open(model_dir + "/cases/" + name + ".inputs.safetensors");
  const auto ids = file.view("input_ids");
  const auto mask = file.view("attention_mask");
  EXPECT_EQ(ids.shape.size(), 2u);
  const auto rows = ids.shape[0], cols = ids.shape[1];
  std::vector<std::vector<TokenId>> out(static_cast<std::size_t>(rows));
  const auto* id_data = static_cast<const std::int64_t*>(ids.data);
  const auto* mask_data = static_cast<const std::int64_t*>(mask.data);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      if (mask_data[r * cols + c] != 0) out[r].push_back(id_data[r * cols + c]);
    }
  }
  return out;
}

TEST(TokenizerCasesGolden, QwenPromptsGiveInputIds) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string family : {"tiny-qwen2-vl", "tiny-qwen2.5-vl"}) {
    const auto dir = fixture(family);
    const auto manifest = read_json(dir + "/manifest.json");
    const auto fast = Tokenizer::load(dir + "/model/tokenizer.json");
    const auto slow = Tokenizer::load(dir + "/model/vocab.json");
    for (const auto& [name, c] : manifest.at("cases").items()) {
      SCOPED_TRACE(family + "/" + name);
      const auto expected = case_input_ids(dir, name);
      const auto& prompts = c.at("decoded_prompt_after_expansion");
      ASSERT_EQ(prompts.size(), expected.size());
      for (std::size_t r = 0; r < expected.size(); ++r) {
        std::string prompt = prompts[r].get<std::string>();
        // Left padding shows as leading <|endoftext|> in the decoded prompt.
        const std::string pad = "<|endoftext|>";
        while (prompt.rfind(pad, 0) == 0) prompt.erase(0, pad.size());
        EXPECT_EQ(fast.encode_ids(prompt), expected[r]);
        EXPECT_EQ(slow.encode_ids(prompt), expected[r]);
        EXPECT_EQ(fast.decode(expected[r]), prompt);
      }
    }
  }
}

TEST(TokenizerCasesGolden, LlavaSentencepieceGivesInputIds) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  const auto dir = fixture("tiny-llava-1.5");
  const auto manifest = read_json(dir + "/manifest.json");
  const auto tok = Tokenizer::load(dir + "/model");
  EXPECT_EQ(tok.kind(), "sentencepiece");
  EXPECT_EQ(tok.token_to_id("<image>"), 1000);
  for (const auto& [name, c] : manifest.at("cases").items()) {
    SCOPED_TRACE(name);
    const auto expected = case_input_ids(dir, name);
    ASSERT_EQ(expected.size(), 1u);
    // The processor expands each <image> to 16 placeholders before tokenizing.
    std::string prompt = c.at("prompt_text").get<std::string>();
    std::string expanded;
    std::size_t pos = 0;
    while (true) {
      const auto hit = prompt.find("<image>", pos);
      expanded += prompt.substr(pos, hit == std::string::npos ? hit : hit - pos);
      if (hit == std::string::npos) break;
      for (int k = 0; k < 16; ++k) expanded += "<image>";
      pos = hit + 7;
    }
    const Encoding e = tok.encode(expanded, true);
    EXPECT_EQ(e.ids, expected[0]);
    EXPECT_EQ(e.tokens, c.at("tokens").get<std::vector<std::string>>());
    EXPECT_EQ(tok.decode(expected[0]), c.at("decoded_input_ids").get<std::string>());
  }
}

TEST(TokenizerCasesGolden, LlavaLegacySettingChangesTextAfterSpecialTokens) {
  GLIMPSE_REQUIRE_FIXTURES();
  GLIMPSE_REQUIRE_SENTENCEPIECE();
  const auto dir = fixture("tiny-llava-1.5/model");
  TokenizerOptions legacy;
  legacy.legacy = true;
  const auto old_style = Tokenizer::load(dir + "/tokenizer.model", legacy);
  const auto new_style = Tokenizer::load(dir + "/tokenizer.model");  // config: legacy=false
  const auto a = old_style.encode("<image>\nHi there", false).tokens;
  const auto b = new_style.encode("<image>\nHi there", false).tokens;
  EXPECT_NE(a, b);
  EXPECT_EQ(b.front(), "<image>");
  EXPECT_EQ(b.at(1), "<0x0A>");
  // Legacy: the text after the special token gets sentencepiece's dummy prefix.
  EXPECT_EQ(a.at(1), "\xE2\x96\x81");
}

}  // namespace
}  // namespace glimpse::text
