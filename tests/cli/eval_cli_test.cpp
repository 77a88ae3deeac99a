// glimpse world + glimpse eval end to end on the tiny fixture model: totals that count every
// item, shards (plain processes and mpirun ranks) that add up to one process, a FastV pipeline
// that lowers the prefill FLOPs, and errors for bad data.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace glimpse::test {
namespace {

nlohmann::json eval_json(const std::vector<std::string>& extra, const std::string& data,
                         const std::string& model) {
  std::vector<std::string> args = {"eval", "--model", model, "--data", data, "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(last_line(r.out));
}

class EvalCliGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    GLIMPSE_REQUIRE_FIXTURES();
    model_ = fixtures_dir() + "/tiny-qwen2-vl/model";
    data_ = dir_.file("test.jsonl");
    const auto r =
        run_cli({"world", "--seed", "5", "--count", "7", "--size", "112", "--out", data_});
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  TempDir dir_;
  std::string model_, data_;
};

TEST_F(EvalCliGolden, CountsEveryItemAndCostsTheRun) {
  const auto t = eval_json({"--max-new-tokens", "3"}, data_, model_);
  EXPECT_EQ(t["items"], 7);
  std::int64_t counted = 0;
  for (const auto& [type, c] : t["counts"].items()) counted += c[1].get<std::int64_t>();
  EXPECT_EQ(counted, 7);
  EXPECT_GE(t["accuracy"].get<double>(), 0.0);
  EXPECT_LE(t["accuracy"].get<double>(), 1.0);
  EXPECT_GT(t["mean_prompt_tokens"].get<double>(), 16);  // 112 px: 16 visual tokens and the text
  EXPECT_GT(t["mean_prefill_flops"].get<double>(), 0);
  EXPECT_GT(t["mean_kv_bytes"].get<double>(), 0);
  // FastV keeps half of the visual tokens after layer 1: fewer FLOPs, fewer KV bytes.
  const auto f = eval_json({"--max-new-tokens", "3", "--pipeline",
                            R"({"methods": [{"type": "fastv", "layer": 1, "ratio": 0.5}]})"},
                           data_, model_);
  EXPECT_LT(f["mean_prefill_flops"].get<double>(), t["mean_prefill_flops"].get<double>());
  EXPECT_LT(f["mean_kv_bytes"].get<double>(), t["mean_kv_bytes"].get<double>());
}

TEST_F(EvalCliGolden, ShardsAddUpToOneProcess) {
  const auto whole = eval_json({"--max-new-tokens", "3"}, data_, model_);
  const auto a = eval_json({"--max-new-tokens", "3", "--shard", "0/2"}, data_, model_);
  const auto b = eval_json({"--max-new-tokens", "3", "--shard", "1/2"}, data_, model_);
  EXPECT_EQ(a["items"].get<int>() + b["items"].get<int>(), 7);
  for (const auto& [type, c] : whole["counts"].items()) {
    const auto ca = a["counts"].value(type, nlohmann::json::array({0, 0}));
    const auto cb = b["counts"].value(type, nlohmann::json::array({0, 0}));
    EXPECT_EQ(ca[0].get<int>() + cb[0].get<int>(), c[0].get<int>()) << type;
    EXPECT_EQ(ca[1].get<int>() + cb[1].get<int>(), c[1].get<int>()) << type;
  }
}

TEST_F(EvalCliGolden, MpirunTwoRanksEqualsOneProcess) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  const auto whole = eval_json({"--max-new-tokens", "3"}, data_, model_);
  // One torch thread per rank (two cores here); as root mpirun needs --allow-run-as-root.
  const std::string cmd = "mpirun --allow-run-as-root --oversubscribe -n 2 " +
                          std::string(GLIMPSE_CLI_PATH) + " --threads 1 eval --model " + model_ +
                          " --data " + data_ + " --max-new-tokens 3 --json > " +
                          dir_.file("mpi.out") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(dir_.file("mpi.out"));
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto m = nlohmann::json::parse(last_line(out));
  EXPECT_EQ(m["counts"], whole["counts"]) << out;
  EXPECT_EQ(m["accuracy"], whole["accuracy"]);
  EXPECT_EQ(m["mean_prefill_flops"], whole["mean_prefill_flops"]);
  EXPECT_EQ(m["shard"], "mpi:2");
}

TEST_F(EvalCliGolden, SweepCostsFallWithTheRatioAndPlots) {
  const auto s =
      eval_json({"--max-new-tokens", "2", "--sweep", "fastv.ratio=0.25,0.75", "--pipeline",
                 R"({"methods": [{"type": "fastv", "layer": 1, "ratio": 0.5}]})", "--plot",
                 dir_.file("sweep.png")},
                data_, model_);
  ASSERT_EQ(s["points"].size(), 2u);
  EXPECT_EQ(s["plain"]["items"], 7);
  const double a = s["points"][0]["relative_cost"], b = s["points"][1]["relative_cost"];
  EXPECT_LT(a, 1.0);
  EXPECT_LT(b, a);  // more pruned, fewer FLOPs
  EXPECT_TRUE(std::filesystem::exists(dir_.file("sweep.png")));
  const auto bad = run_cli({"eval", "--model", model_, "--data", data_, "--sweep", "fastv"});
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("--sweep"), std::string::npos) << bad.out;
}

TEST_F(EvalCliGolden, BadInputIsOneLineAndStatusTwo) {
  const std::string bad = dir_.file("bad.jsonl");
  std::ofstream(bad) << "{\"question\": \"q\", \"answer\": \"a\", \"image\": \"missing.png\"}\n";
  auto r = run_cli({"eval", "--model", model_, "--data", bad});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("missing.png"), std::string::npos) << r.out;
  r = run_cli({"eval", "--model", model_, "--data", data_, "--shard", "2/2"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--shard"), std::string::npos) << r.out;
  r = run_cli({"eval", "--model", model_, "--data", data_, "--shard", "x"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

}  // namespace
}  // namespace glimpse::test
