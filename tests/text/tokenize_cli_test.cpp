// glimpse tokenize / detokenize.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "test_util.h"

namespace glimpse {
namespace {

using nlohmann::json;

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

TEST(TokenizeCliGolden, TokenizeAndDetokenize) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = test::fixtures_dir() + "/tiny-qwen2-vl/model";
  auto r = test::run_cli({"tokenize", "--tokenizer", model, "--text", "Hello world", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["ids"], json({72, 264, 336, 287, 259, 871}));
  EXPECT_EQ(lines[0]["tokens"], json({"H", "el", "lo", "\xC4\xA0w", "or", "ld"}));

  r = test::run_cli({"tokenize", "--tokenizer", model, "--text", "Hello"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("[72,264,336]"), std::string::npos) << r.out;

  r = test::run_cli({"detokenize", "--tokenizer", model + "/tokenizer.json", "--ids",
                     "1001,72, 264,336,1002", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(json_lines(r.out)[0]["text"], "<|im_start|>Hello<|im_end|>");
  r = test::run_cli({"detokenize", "--tokenizer", model, "--ids", "1001,72,264,336,1002",
                     "--skip-special-tokens"});
  EXPECT_EQ(r.out, "Hello\n");
}

TEST(TokenizeCliGolden, JsonLinesAndSpecialTokens) {
  GLIMPSE_REQUIRE_FIXTURES();
  test::TempDir dir;
  std::ofstream(dir.file("in.jsonl"))
      << "{\"text\": \"Hello\"}\n\n{\"text\": \"\"}\n{\"text\": \"a\\nb\"}\n";
  const std::string spm = test::fixtures_dir() + "/tokenizers/llama-style-spm-bpe";
  auto r = test::run_cli({"tokenize", "--tokenizer", spm, "--jsonl", dir.file("in.jsonl"),
                          "--add-special-tokens", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["ids"], json({1, 22557}));
  EXPECT_EQ(lines[1]["ids"], json({1}));

  std::ofstream(dir.file("ids.jsonl")) << "{\"ids\": [1, 22557]}\n{\"ids\": []}\n";
  r = test::run_cli({"detokenize", "--tokenizer", spm, "--jsonl", dir.file("ids.jsonl"), "--json",
                     "--skip-special-tokens"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["text"], "Hello");
  EXPECT_EQ(lines[1]["text"], "");
}

TEST(TokenizeCliTest, ErrorsAreOneLineWithExitCode2) {
  test::TempDir dir;
  auto r = test::run_cli({"tokenize", "--tokenizer", dir.file("missing"), "--text", "x"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  std::ofstream(dir.file("tokenizer.json"))
      << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})";
  r = test::run_cli({"tokenize", "--tokenizer", dir.path().string()});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = test::run_cli({"detokenize", "--tokenizer", dir.path().string(), "--ids", "0,x"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--ids"), std::string::npos) << r.out;
  std::ofstream(dir.file("bad.jsonl")) << "{\"text\": 3}\n";
  r = test::run_cli(
      {"tokenize", "--tokenizer", dir.path().string(), "--jsonl", dir.file("bad.jsonl")});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("line 1"), std::string::npos) << r.out;
  r = test::run_cli({"tokenize", "--tokenizer", dir.path().string(), "--text", "a\xFF"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = test::run_cli({"detokenize", "--tokenizer", dir.path().string(), "--ids", "0,0,5"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "a a\n");  // no decoder: tokens joined by spaces; unknown ids skipped
}

}  // namespace
}  // namespace glimpse
