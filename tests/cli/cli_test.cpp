// The glimpse binary: info, safetensors ls, and one-line errors with exit codes below 128.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace glimpse::test {
namespace {

void expect_one_line_error(const CommandResult& r) {
  EXPECT_GT(r.exit_code, 0) << r.out;
  EXPECT_LT(r.exit_code, 128) << r.out;
  EXPECT_EQ(r.signal, 0);
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "expected one line: " << r.out;
}

TEST(CliTest, InfoPrintsVersionsBlasAndThreads) {
  const auto r = run_cli({"info"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* key : {"glimpse", "torch", "blas", "threads", "cpu features"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key;
  }
  const auto j = run_cli({"info", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.out;
  EXPECT_NE(j.out.find("\"torch_version\""), std::string::npos);
}

TEST(CliTest, SafetensorsLsListsAFile) {
  TempDir dir;
  // 8-byte length, header, 8 data bytes.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  bytes += header + std::string(8, '\0');
  std::ofstream(dir.file("a.safetensors"), std::ios::binary) << bytes;
  const auto r = run_cli({"safetensors", "ls", dir.file("a.safetensors")});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("w "), std::string::npos);
  EXPECT_NE(r.out.find("F32"), std::string::npos);
  EXPECT_NE(r.out.find("[2]"), std::string::npos);
  EXPECT_NE(r.out.find("1 tensors, 8 bytes"), std::string::npos);
  const auto folder = run_cli({"safetensors", "ls", "--json", dir.path().string()});
  ASSERT_EQ(folder.exit_code, 0) << folder.out;
  EXPECT_NE(folder.out.find(R"("name":"w")"), std::string::npos);
}

TEST(CliTest, BadInputGivesOneLineErrors) {
  TempDir dir;
  std::ofstream(dir.file("junk.safetensors"), std::ios::binary) << "\x10\0\0\0\0\0\0\0{\"a\":";
  std::ofstream(dir.file("short.safetensors"), std::ios::binary) << "abc";
  expect_one_line_error(run_cli({"safetensors", "ls", dir.file("junk.safetensors")}));
  expect_one_line_error(run_cli({"safetensors", "ls", dir.file("short.safetensors")}));
  expect_one_line_error(run_cli({"safetensors", "ls", dir.file("missing.safetensors")}));
  expect_one_line_error(run_cli({"safetensors", "ls", dir.path().string()}));  // no files
  expect_one_line_error(run_cli({"--log-level", "loud", "info"}));
  const auto none = run_cli({});
  EXPECT_GT(none.exit_code, 0);
  EXPECT_LT(none.exit_code, 128);
}

TEST(CliFixturesGolden, LsListsTheTinyQwenCheckpoint) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto r = run_cli({"safetensors", "ls", fixtures_dir() + "/tiny-qwen2-vl/model"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("model.embed_tokens.weight"), std::string::npos);
  EXPECT_NE(r.out.find("visual.merger.mlp.0.weight"), std::string::npos);
}

}  // namespace
}  // namespace glimpse::test
