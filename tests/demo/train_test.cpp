// Training the demo model: the BPE trainer's merges, and a run stopped and resumed ending with
// the weights of an uninterrupted one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "demo/bpe_trainer.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/demo/train.h"
#include "glimpse/text/tokenizer.h"
#include "test_util.h"

namespace glimpse::demo {
namespace {

namespace fs = std::filesystem;

std::string tiny_config() {
  return std::string(GLIMPSE_SOURCE_DIR) + "/examples/configs/tiny-qwen2-vl.json";
}

// A bytes-only Qwen-style tokenizer.json, as write_random_checkpoint makes it.
std::string bytes_tokenizer(const test::TempDir& dir) {
  bench::write_random_checkpoint(core::Config::load(tiny_config()), dir.file("ck"));
  return dir.file("ck/tokenizer.json");
}

TEST(BpeTrainer, MergesTheMostFrequentPairUntilNoneRepeats) {
  test::TempDir dir;
  const std::string path = bytes_tokenizer(dir);
  // Pairs: (a,a) 3 times, (a,b) twice; after merging "aa": every pair occurs once.
  const auto r = train_bpe_tokenizer(path, {"aaab", "aab"}, {});
  ASSERT_EQ(r.merges.size(), 1u);
  EXPECT_EQ(r.merges[0], std::make_pair(std::string("a"), std::string("a")));
  const auto tok = text::Tokenizer::load(path);
  EXPECT_EQ(tok.encode_ids("aab"), (std::vector<std::int64_t>{256, 'b'}));
  EXPECT_EQ(tok.token_to_id("aa"), std::optional<std::int64_t>(256));
}

TEST(BpeTrainer, SpacesBelongToTheWordAndTiesBreakByOrder) {
  test::TempDir dir;
  const std::string path = bytes_tokenizer(dir);
  BpeTrainOptions o;
  o.single_token_words = {"red", " red"};
  const auto r = train_bpe_tokenizer(path, {"red red red", "red"}, o);
  const auto tok = text::Tokenizer::load(path);
  EXPECT_EQ(tok.encode_ids(" red").size(), 1u);
  EXPECT_EQ(tok.encode_ids("red").size(), 1u);
  // Ties (every pair of "red" and " red" occurs as often) go to the smallest pair first.
  ASSERT_FALSE(r.merges.empty());
  EXPECT_EQ(r.merges[0].first, "e");
  EXPECT_EQ(r.merges[0].second, "d");
  o.single_token_words = {"blue"};
  const std::string again = bytes_tokenizer(dir);
  EXPECT_THROW(train_bpe_tokenizer(again, {"red red"}, o), ConfigError);
}

TEST(BpeTrainer, RefusesIdsTakenByAddedTokens) {
  test::TempDir dir;
  const std::string path = bytes_tokenizer(dir);
  // The tiny config's special tokens start at id 1000; 900 merges would reach them.
  std::vector<std::string> texts;
  for (int i = 0; i < 3000; ++i) {  // distinct 5-letter words, each twice
    std::string w;
    for (std::int64_t x = i * 7919LL + 12345; w.size() < 5; x /= 26)
      w += static_cast<char>('a' + x % 26);
    texts.push_back(w);
    texts.push_back(w);
  }
  BpeTrainOptions o;
  o.max_merges = 900;
  EXPECT_THROW(train_bpe_tokenizer(path, texts, o), ConfigError);
}

TrainOptions tiny_run(const test::TempDir& dir, const std::string& name) {
  TrainOptions o;
  o.config = tiny_config();
  o.out_dir = dir.file(name + "-model");
  o.state_dir = dir.file(name + "-state");
  o.image_size = 56;
  o.steps = 4;
  o.batch = 2;
  o.warmup = 1;
  return o;
}

at::Tensor state_weights(const TrainOptions& o, const std::string& name) {
  return core::load_tensor(core::Checkpoint::open(o.state_dir + "/weights.safetensors"), name);
}

TEST(TrainDemo, ResumedRunEqualsAnUninterruptedOne) {
  test::TempDir dir;
  std::vector<double> losses;
  const TrainOptions whole = tiny_run(dir, "whole");
  const auto a = train_demo(whole, [&](const StepReport& r) { losses.push_back(r.loss); });
  EXPECT_EQ(a.end_step, 4);
  ASSERT_EQ(losses.size(), 4u);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));

  TrainOptions part = tiny_run(dir, "part");
  part.stop_step = 2;
  const auto b1 = train_demo(part);
  EXPECT_EQ(b1.end_step, 2);
  EXPECT_FALSE(b1.resumed_from_state);
  part.stop_step = 0;
  std::vector<std::string> said;
  const auto b2 = train_demo(part, {}, [&](const std::string& m) { said.push_back(m); });
  EXPECT_TRUE(b2.resumed_from_state);
  EXPECT_EQ(b2.start_step, 2);
  EXPECT_EQ(b2.end_step, 4);

  // One thread or several, the same operations in the same order on the same data.
  const auto names = core::Checkpoint::open(whole.state_dir + "/weights.safetensors").names();
  ASSERT_FALSE(names.empty());
  for (const auto& n : names)
    EXPECT_TRUE(at::equal(state_weights(whole, n), state_weights(part, n))) << n;
  // The exported checkpoint loads as a model with trained (not random) weights.
  const auto config = core::Config::load(whole.out_dir + "/config.json");
  EXPECT_FALSE(config.has(bench::kRandomWeightsKey));
  // The same options are required to continue a state.
  TrainOptions other = part;
  other.learning_rate = 5e-4;
  other.steps = 6;
  EXPECT_THROW(train_demo(other), InputError);
}

TEST(TrainDemo, WithoutStateResumesFromTheWeightsWithAFreshOptimizer) {
  test::TempDir dir;
  TrainOptions o = tiny_run(dir, "w");
  o.stop_step = 2;
  train_demo(o);
  fs::remove_all(o.state_dir);
  o.stop_step = 0;
  std::string said;
  const auto r = train_demo(o, {}, [&](const std::string& m) { said += m + "\n"; });
  EXPECT_TRUE(r.resumed_from_weights);
  EXPECT_EQ(r.start_step, 2);
  EXPECT_NE(said.find("FRESH optimizer"), std::string::npos) << said;
}

// The gradients reach the loss: 40 steps of the tiny model take the answer and cell losses far
// below where random weights start (ln 1024 = 6.9).
TEST(TrainDemo, LossesFall) {
  test::TempDir dir;
  TrainOptions o = tiny_run(dir, "fall");
  o.steps = 40;
  o.learning_rate = 3e-3;
  o.warmup = 5;
  std::vector<StepReport> r;
  train_demo(o, [&](const StepReport& s) { r.push_back(s); });
  ASSERT_EQ(r.size(), 40u);
  auto mean = [&](std::size_t from, double StepReport::*field) {
    double sum = 0;
    for (std::size_t i = from; i < from + 5; ++i) sum += r[i].*field;
    return sum / 5;
  };
  EXPECT_LT(mean(35, &StepReport::answer_loss), 0.6 * mean(0, &StepReport::answer_loss));
  EXPECT_LT(mean(35, &StepReport::aux_loss), 0.5 * mean(0, &StepReport::aux_loss));
}

TEST(TrainDemo, BadOptionsAreRefused) {
  test::TempDir dir;
  TrainOptions o = tiny_run(dir, "bad");
  o.batch = 0;
  EXPECT_THROW(train_demo(o), InputError);
  o = tiny_run(dir, "bad");
  o.learning_rate = -1;
  EXPECT_THROW(train_demo(o), InputError);
  o = tiny_run(dir, "bad");
  o.image_size = 60;  // not a multiple of 28
  EXPECT_THROW(train_demo(o), InputError);
}

}  // namespace
}  // namespace glimpse::demo
