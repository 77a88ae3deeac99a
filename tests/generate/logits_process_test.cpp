#include "glimpse/generate/logits_process.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "glimpse/core/error.h"
#include "glimpse/generate/generation_config.h"
#include "test_util.h"

namespace glimpse::generate {
namespace {

// The references below are plain loops over std::vector, written from the transformers 4.50
// docstrings and code of each class, so that they share no code path with the ATen versions.
using Row = std::vector<float>;
using Rows = std::vector<Row>;
using Ids = std::vector<std::vector<std::int64_t>>;
constexpr float kInf = std::numeric_limits<float>::infinity();

at::Tensor tensor_of(const Rows& rows) {
  at::Tensor t =
      at::empty({static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())},
                at::kFloat);
  auto a = t.accessor<float, 2>();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (std::size_t j = 0; j < rows[i].size(); ++j) a[i][j] = rows[i][j];
  }
  return t;
}

at::Tensor ids_of(const Ids& rows) {
  const auto len = static_cast<std::int64_t>(rows[0].size());
  at::Tensor t = at::empty({static_cast<std::int64_t>(rows.size()), len}, at::kLong);
  auto a = t.accessor<std::int64_t, 2>();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (std::int64_t j = 0; j < len; ++j) a[i][j] = rows[i][j];
  }
  return t;
}

Rows rows_of(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  auto a = c.accessor<float, 2>();
  Rows out(c.size(0), Row(c.size(1)));
  for (std::int64_t i = 0; i < c.size(0); ++i) {
    for (std::int64_t j = 0; j < c.size(1); ++j) out[i][j] = a[i][j];
  }
  return out;
}

// Infinities and NaN must match exactly; finite values to a relative 1e-6.
void expect_rows(const Rows& got, const Rows& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), want[i].size()) << what;
    for (std::size_t j = 0; j < got[i].size(); ++j) {
      const float g = got[i][j], w = want[i][j];
      if (std::isnan(w) || std::isinf(w)) {
        EXPECT_TRUE((std::isnan(g) && std::isnan(w)) || g == w)
            << what << " [" << i << "][" << j << "]: " << g << " vs " << w;
      } else {
        EXPECT_NEAR(g, w, 1e-6 * std::max(1.0f, std::fabs(w)))
            << what << " [" << i << "][" << j << "]";
      }
    }
  }
}

Rows run(const LogitsProcessor& p, const Ids& ids, const Rows& scores) {
  return rows_of(p(ids_of(ids), tensor_of(scores)));
}

bool contains(const std::vector<std::int64_t>& v, std::int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Two rows with ties (3.0 twice), negative, zero and positive scores.
const Rows kScores = {{1.0f, -2.0f, 3.0f, 0.0f, 3.0f, -0.5f, 2.5f, 0.25f},
                      {-1.0f, 4.0f, -3.0f, 2.0f, 0.5f, 4.0f, -0.25f, 1.5f}};

// --- references ---------------------------------------------------------------------------------

Rows ref_repetition(Rows s, const Ids& ids, float penalty) {
  for (std::size_t b = 0; b < s.size(); ++b) {
    for (const auto t : std::set<std::int64_t>(ids[b].begin(), ids[b].end())) {
      float& v = s[b][t];
      v = v < 0 ? v * penalty : v / penalty;
    }
  }
  return s;
}

Rows ref_no_repeat(Rows s, const Ids& ids, std::size_t n) {
  for (std::size_t b = 0; b < s.size(); ++b) {
    const auto& row = ids[b];
    if (row.size() + 1 < n) continue;
    std::map<std::vector<std::int64_t>, std::vector<std::int64_t>> next;  // prefix -> followers
    for (std::size_t i = 0; i + n <= row.size(); ++i) {
      next[std::vector<std::int64_t>(row.begin() + i, row.begin() + i + n - 1)].push_back(
          row[i + n - 1]);
    }
    const std::vector<std::int64_t> tail(row.end() - (n - 1), row.end());
    for (const auto t : next[tail]) s[b][t] = -kInf;
  }
  return s;
}

Rows ref_bad_words(Rows s, const Ids& ids, const Ids& bad, const std::vector<std::int64_t>& eos) {
  for (std::size_t b = 0; b < s.size(); ++b) {
    for (const auto& w : bad) {
      if (w.size() == 1) {
        if (!contains(eos, w[0])) s[b][w[0]] = -kInf;
      } else if (w.size() <= ids[b].size() &&
                 std::equal(w.begin(), w.end() - 1, ids[b].end() - (w.size() - 1))) {
        s[b][w.back()] = -kInf;
      }
    }
  }
  return s;
}

Rows ref_ban(Rows s, const std::vector<std::int64_t>& tokens) {
  for (auto& row : s) {
    for (const auto t : tokens) {
      if (t < static_cast<std::int64_t>(row.size())) row[t] = -kInf;
    }
  }
  return s;
}

Rows ref_force(Rows s, const std::vector<std::int64_t>& tokens) {
  for (auto& row : s) {
    for (std::size_t j = 0; j < row.size(); ++j) {
      row[j] = contains(tokens, static_cast<std::int64_t>(j)) ? 0.0f : -kInf;
    }
  }
  return s;
}

Rows ref_top_k(Rows s, std::size_t k) {
  for (auto& row : s) {
    Row sorted = row;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const float kth = sorted[std::min(k, row.size()) - 1];
    for (auto& v : row) {
      if (v < kth) v = -kInf;
    }
  }
  return s;
}

std::vector<double> softmax(const Row& row) {
  double max = -std::numeric_limits<double>::infinity();
  for (const auto v : row) max = std::max(max, static_cast<double>(v));
  std::vector<double> p(row.size());
  double sum = 0;
  for (std::size_t j = 0; j < row.size(); ++j) sum += p[j] = std::exp(row[j] - max);
  for (auto& x : p) x /= sum;
  return p;
}

Rows ref_top_p(Rows s, double top_p) {
  for (auto& row : s) {
    const auto p = softmax(row);
    std::vector<std::size_t> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return row[a] < row[b]; });
    double cum = 0;
    std::vector<bool> remove(row.size(), false);
    for (std::size_t i = 0; i + 1 < order.size(); ++i) {  // the largest is always kept
      cum += p[order[i]];
      remove[order[i]] = cum <= 1 - top_p;
    }
    for (std::size_t j = 0; j < row.size(); ++j) {
      if (remove[j]) row[j] = -kInf;
    }
  }
  return s;
}

Rows ref_min_p(Rows s, double min_p) {
  for (auto& row : s) {
    const auto p = softmax(row);
    const double top = *std::max_element(p.begin(), p.end());
    for (std::size_t j = 0; j < row.size(); ++j) {
      if (p[j] < min_p * top) row[j] = -kInf;
    }
  }
  return s;
}

// --- each processor against its reference ------------------------------------------------------

TEST(LogitsProcessTest, RepetitionPenaltyPenalisesEachTokenOnce) {
  // Token 2 appears three times and token 4 twice: each is still penalised once.
  const Ids ids = {{2, 2, 0, 4, 2, 4, 1}, {5, 5, 5, 6, 0, 3, 3}};
  for (const float penalty : {1.3f, 0.7f}) {
    const auto want = ref_repetition(kScores, ids, penalty);
    expect_rows(run(RepetitionPenaltyLogitsProcessor(penalty), ids, kScores), want, "penalty");
  }
  // Positive scores shrink, negative ones grow in magnitude, zero stays.
  const auto got = run(RepetitionPenaltyLogitsProcessor(2.0), {{0, 1, 3}, {0, 1, 3}}, kScores);
  EXPECT_FLOAT_EQ(got[0][0], 0.5f);
  EXPECT_FLOAT_EQ(got[0][1], -4.0f);
  EXPECT_FLOAT_EQ(got[0][3], 0.0f);
  EXPECT_FLOAT_EQ(got[0][2], 3.0f);  // not in input_ids
  EXPECT_THROW(RepetitionPenaltyLogitsProcessor(0.0), InputError);
  EXPECT_THROW(run(RepetitionPenaltyLogitsProcessor(1.1), {{9}, {0}}, kScores), InputError);
}

TEST(LogitsProcessTest, NoRepeatNGramBansCompletions) {
  const Ids ids = {{1, 2, 3, 1, 2, 5, 1, 2}, {4, 4, 4, 4, 0, 4, 6, 4}};
  for (const std::size_t n : {1, 2, 3, 4}) {
    const auto want = ref_no_repeat(kScores, ids, n);
    expect_rows(run(NoRepeatNGramLogitsProcessor(n), ids, kScores), want, "n=" + std::to_string(n));
  }
  // Row 0 ends with "1 2": 3 and 5 followed it, so n=3 bans both.
  const auto got = run(NoRepeatNGramLogitsProcessor(3), ids, kScores);
  EXPECT_EQ(got[0][3], -kInf);
  EXPECT_EQ(got[0][5], -kInf);
  EXPECT_EQ(got[0][2], kScores[0][2]);
  // Too short to end an n-gram: unchanged.
  expect_rows(run(NoRepeatNGramLogitsProcessor(4), {{1, 1}, {2, 2}}, kScores), kScores, "short");
}

TEST(LogitsProcessTest, NoBadWordsSingleAlwaysLongerAfterPrefix) {
  const std::vector<std::int64_t> eos = {7};
  // {7} is a lone eos and is dropped; {1, 2} repeats; {0, 3, 4, 1} is as long as the context.
  const Ids bad = {{6}, {7}, {1, 2}, {1, 2}, {0, 3}, {3, 4, 5}, {0, 3, 4, 1}};
  const Ids ids = {{5, 3, 4, 1}, {6, 0, 3, 4}};
  const auto want = ref_bad_words(kScores, ids, bad, eos);
  const auto got = run(NoBadWordsLogitsProcessor(bad, eos), ids, kScores);
  expect_rows(got, want, "bad words");
  EXPECT_EQ(got[0][6], -kInf);  // single token, both rows
  EXPECT_EQ(got[1][6], -kInf);
  EXPECT_EQ(got[0][7], kScores[0][7]);  // the lone eos is not banned
  EXPECT_EQ(got[0][2], -kInf);          // row 0 ends with 1
  EXPECT_EQ(got[1][2], kScores[1][2]);  // row 1 does not
  EXPECT_EQ(got[1][1], -kInf);          // row 1 ends with 0 3 4
  EXPECT_EQ(got[1][5], -kInf);          // and with 3 4
  EXPECT_EQ(got[0][5], kScores[0][5]);  // row 0 ends with 4 1
  // A sequence longer than the context is ignored even when its prefix would fit (the reference
  // compares the whole length): row 1 ends with 0 3 4 but holds only three tokens.
  const Ids short_ids = {{3, 4, 1}, {0, 3, 4}};
  const auto short_rows = run(NoBadWordsLogitsProcessor(bad, eos), short_ids, kScores);
  expect_rows(short_rows, ref_bad_words(kScores, short_ids, bad, eos), "short context");
  EXPECT_EQ(short_rows[1][1], kScores[1][1]);
  EXPECT_THROW(NoBadWordsLogitsProcessor({{1}, {}}, {}), InputError);
  EXPECT_THROW(run(NoBadWordsLogitsProcessor({{99}}, {}), ids, kScores), InputError);
}

TEST(LogitsProcessTest, MinLengthAndMinNewTokensBanEos) {
  const std::vector<std::int64_t> eos = {2, 5, 40};  // 40 is outside the vocabulary: ignored
  const Ids len3 = {{1, 1, 1}, {2, 2, 2}};
  expect_rows(run(MinLengthLogitsProcessor(4, eos), len3, kScores), ref_ban(kScores, eos), "<");
  expect_rows(run(MinLengthLogitsProcessor(3, eos), len3, kScores), kScores, ">=");
  // Prompt of 2: one new token so far.
  expect_rows(run(MinNewTokensLengthLogitsProcessor(2, 2, eos), len3, kScores),
              ref_ban(kScores, eos), "new <");
  expect_rows(run(MinNewTokensLengthLogitsProcessor(2, 1, eos), len3, kScores), kScores, "new >=");
}

TEST(LogitsProcessTest, ForcedBosAtLengthOneForcedEosBeforeMaxLength) {
  expect_rows(run(ForcedBOSTokenLogitsProcessor(3), {{0}, {1}}, kScores), ref_force(kScores, {3}),
              "bos");
  expect_rows(run(ForcedBOSTokenLogitsProcessor(3), {{0, 1}, {1, 1}}, kScores), kScores, "later");
  const Ids len4 = {{0, 1, 2, 3}, {3, 2, 1, 0}};
  expect_rows(run(ForcedEOSTokenLogitsProcessor(5, {6, 1}), len4, kScores),
              ref_force(kScores, {6, 1}), "eos");
  expect_rows(run(ForcedEOSTokenLogitsProcessor(6, {6, 1}), len4, kScores), kScores, "earlier");
}

TEST(LogitsProcessTest, SuppressTokensAlwaysAndAtBegin) {
  const Ids len3 = {{1, 1, 1}, {2, 2, 2}};
  expect_rows(run(SuppressTokensLogitsProcessor({0, 4, 4, 30}), len3, kScores),
              ref_ban(kScores, {0, 4}), "suppress");
  expect_rows(run(SuppressTokensAtBeginLogitsProcessor({1, 6}, 3), len3, kScores),
              ref_ban(kScores, {1, 6}), "at begin");
  expect_rows(run(SuppressTokensAtBeginLogitsProcessor({1, 6}, 2), len3, kScores), kScores,
              "after begin");
}

TEST(LogitsProcessTest, InfNanRemoveUsesFloatLimits) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Rows scores = {{nan, kInf, -kInf, 1.5f}};
  const float max = std::numeric_limits<float>::max();
  expect_rows(run(InfNanRemoveLogitsProcessor(), {{0}}, scores), {{0.0f, max, -max, 1.5f}},
              "inf nan");
}

TEST(LogitsProcessTest, TemperatureDivides) {
  Rows want = kScores;
  for (auto& row : want) {
    for (auto& v : row) v /= 0.7f;
  }
  expect_rows(run(TemperatureLogitsWarper(0.7), {{0}, {0}}, kScores), want, "temperature");
  EXPECT_THROW(TemperatureLogitsWarper(0.0), InputError);
}

TEST(LogitsProcessTest, TopKKeepsTiesWithTheKth) {
  for (const std::size_t k : {1, 2, 3, 5, 8, 20}) {
    expect_rows(run(TopKLogitsWarper(k), {{0}, {0}}, kScores), ref_top_k(kScores, k),
                "k=" + std::to_string(k));
  }
  // Row 0's top two are the tied 3.0s; k=1 keeps both.
  const auto got = run(TopKLogitsWarper(1), {{0}, {0}}, kScores);
  EXPECT_EQ(got[0][2], 3.0f);
  EXPECT_EQ(got[0][4], 3.0f);
  EXPECT_EQ(got[0][6], -kInf);
  EXPECT_THROW(TopKLogitsWarper(0), InputError);
}

TEST(LogitsProcessTest, TopPKeepsTheNucleus) {
  const Rows scores = {{0.1f, 2.0f, -1.0f, 1.0f, 0.5f, 3.0f},
                       {1.0f, 1.2f, 0.8f, -3.0f, 0.0f, 2.2f}};
  for (const double p : {0.001, 0.3, 0.6, 0.8, 0.95, 1.0}) {
    expect_rows(run(TopPLogitsWarper(p), {{0}, {0}}, scores), ref_top_p(scores, p),
                "p=" + std::to_string(p));
  }
  // top_p 0.001 keeps only the largest score.
  const auto got = run(TopPLogitsWarper(0.001), {{0}, {0}}, scores);
  EXPECT_EQ(std::count_if(got[0].begin(), got[0].end(), [](float v) { return std::isfinite(v); }),
            1);
  EXPECT_EQ(got[0][5], 3.0f);
  EXPECT_THROW(TopPLogitsWarper(0.0), InputError);
}

TEST(LogitsProcessTest, MinPScalesByTheTopProbability) {
  for (const double m : {0.01, 0.1, 0.3, 0.9, 1.0}) {
    expect_rows(run(MinPLogitsWarper(m), {{0}, {0}}, kScores), ref_min_p(kScores, m),
                "min_p=" + std::to_string(m));
  }
  EXPECT_THROW(MinPLogitsWarper(1.5), InputError);
}

TEST(LogitsProcessTest, LogitNormalizationIsLogSoftmax) {
  Rows want = kScores;
  for (auto& row : want) {
    const auto p = softmax(row);
    for (std::size_t j = 0; j < row.size(); ++j) row[j] = static_cast<float>(std::log(p[j]));
  }
  expect_rows(run(LogitNormalization(), {{0}, {0}}, kScores), want, "log_softmax");
}

TEST(LogitsProcessTest, RejectsBadShapes) {
  const RepetitionPenaltyLogitsProcessor p(1.2);
  EXPECT_THROW(p(ids_of({{0}}), at::zeros({4})), InputError);
  EXPECT_THROW(p(ids_of({{0}}).to(at::kInt), at::zeros({1, 4})), InputError);
  EXPECT_THROW(p(ids_of({{0}, {1}}), at::zeros({1, 4})), InputError);
}

// --- the list: which processors, in which order
// ---------------------------------------------------

TEST(LogitsProcessTest, EveryOptionGivesTheReferenceOrder) {
  GenerationConfig c;
  c.repetition_penalty = 1.1;
  c.no_repeat_ngram_size = 3;
  c.bad_words_ids = {{5}, {1, 2}};
  c.min_length = 4;
  c.min_new_tokens = 2;
  c.forced_bos_token_id = 0;
  c.forced_eos_token_ids = {9};
  c.remove_invalid_values = true;
  c.suppress_tokens = {7};
  c.begin_suppress_tokens = {8};
  c.do_sample = true;
  c.temperature = 0.7;
  c.top_k = 10;
  c.top_p = 0.9;
  c.min_p = 0.05;
  c.renormalize_logits = true;
  c.eos_token_ids = {9};
  // GenerationMixin._get_logits_processor (transformers 4.50, generation/utils.py).
  const std::vector<std::string> want = {"RepetitionPenaltyLogitsProcessor",
                                         "NoRepeatNGramLogitsProcessor",
                                         "NoBadWordsLogitsProcessor",
                                         "MinLengthLogitsProcessor",
                                         "MinNewTokensLengthLogitsProcessor",
                                         "ForcedBOSTokenLogitsProcessor",
                                         "ForcedEOSTokenLogitsProcessor",
                                         "InfNanRemoveLogitsProcessor",
                                         "SuppressTokensLogitsProcessor",
                                         "SuppressTokensAtBeginLogitsProcessor",
                                         "TemperatureLogitsWarper",
                                         "TopKLogitsWarper",
                                         "TopPLogitsWarper",
                                         "MinPLogitsWarper",
                                         "LogitNormalization"};
  EXPECT_EQ(make_logits_processors(c, 5).names(), want);
  // Greedy: no warpers, LogitNormalization still last.
  c.do_sample = false;
  auto greedy = want;
  greedy.erase(greedy.begin() + 10, greedy.begin() + 14);
  EXPECT_EQ(make_logits_processors(c, 5).names(), greedy);
}

TEST(LogitsProcessTest, ConditionsFollowTheReference) {
  GenerationConfig c;
  EXPECT_TRUE(make_logits_processors(c, 3).empty());
  c.do_sample = true;  // transformers' default top_k 50 applies when sampling
  EXPECT_EQ(make_logits_processors(c, 3).names(), std::vector<std::string>{"TopKLogitsWarper"});
  c.top_k = 0;
  c.temperature = 1.0;
  c.top_p = 1.0;
  c.min_p = 0;
  c.repetition_penalty = 1.0;
  EXPECT_TRUE(make_logits_processors(c, 3).empty());
  // min_length and min_new_tokens need an eos id.
  c.min_length = 10;
  c.min_new_tokens = 2;
  EXPECT_TRUE(make_logits_processors(c, 3).empty());
  c.do_sample = false;
  c.temperature = 0.5;  // ignored by greedy search, and not an error there
  c.top_p = 0.5;
  EXPECT_TRUE(make_logits_processors(c, 3).empty());
}

// Every row of input_ids is `len` zeros.
Rows run_list(const LogitsProcessorList& list, std::int64_t len, const Rows& scores) {
  const at::Tensor ids = at::zeros({static_cast<std::int64_t>(scores.size()), len}, at::kLong);
  return rows_of(list(ids, tensor_of(scores)));
}

const Rows kRow = {{0.5f, 0.25f, 0.0f, 1.0f}};

TEST(LogitsProcessTest, MinNewTokensReplacesMinLength) {
  GenerationConfig c;
  c.eos_token_ids = {1};
  c.min_length = 100;  // _prepare_generated_length: becomes prompt (5) + min_new_tokens (3)
  c.min_new_tokens = 3;
  const auto list = make_logits_processors(c, 5);
  EXPECT_EQ(run_list(list, 7, kRow)[0][1], -kInf);
  EXPECT_EQ(run_list(list, 8, kRow)[0][1], 0.25f);
  c.min_new_tokens = 0;  // min_length counts with the prompt
  EXPECT_EQ(run_list(make_logits_processors(c, 5), 99, kRow)[0][1], -kInf);
  EXPECT_EQ(run_list(make_logits_processors(c, 5), 100, kRow)[0][1], 0.25f);
}

TEST(LogitsProcessTest, ForcedEosCountsFromMaxNewTokensOrMaxLength) {
  GenerationConfig c;
  c.forced_eos_token_ids = {2};
  c.max_new_tokens = 4;  // prompt 3 + 4: the token chosen at length 6 is the last
  EXPECT_EQ(c.max_length_for(3), 7);
  expect_rows(run_list(make_logits_processors(c, 3), 6, kRow), ref_force(kRow, {2}), "at 6");
  expect_rows(run_list(make_logits_processors(c, 3), 5, kRow), kRow, "at 5");
  c.max_length = 5;  // smaller than 3 + 4: wins
  EXPECT_EQ(c.max_length_for(3), 5);
  expect_rows(run_list(make_logits_processors(c, 3), 4, kRow), ref_force(kRow, {2}), "at 4");
  c.max_length = 50;
  EXPECT_EQ(c.max_length_for(3), 7);
}

TEST(LogitsProcessTest, BeginSuppressStartsAfterAForcedBos) {
  GenerationConfig c;
  c.begin_suppress_tokens = {3};
  EXPECT_EQ(run_list(make_logits_processors(c, 4), 4, kRow)[0][3], -kInf);
  EXPECT_EQ(run_list(make_logits_processors(c, 4), 5, kRow)[0][3], 1.0f);
  // A one-token prompt with a forced bos: the first free step is at length 2.
  c.forced_bos_token_id = 0;
  const auto list = make_logits_processors(c, 1);
  EXPECT_EQ(run_list(list, 2, kRow)[0][3], -kInf);
  expect_rows(run_list(list, 1, kRow), ref_force(kRow, {0}), "forced bos");
  c.forced_bos_token_id = -1;
  EXPECT_EQ(run_list(make_logits_processors(c, 1), 1, kRow)[0][3], -kInf);
  EXPECT_EQ(run_list(make_logits_processors(c, 1), 2, kRow)[0][3], 1.0f);
}

TEST(LogitsProcessTest, QwenConfigLeavesTheArgmaxOfThePenalisedLogits) {
  // Qwen2-VL-2B-Instruct's generation_config.json sampling settings.
  GenerationConfig c;
  c.do_sample = true;
  c.repetition_penalty = 1.05;
  c.temperature = 0.1;
  c.top_k = 1;
  c.top_p = 0.001;
  c.eos_token_ids = {10, 11};
  const Rows scores = {{-2.0f, 1.0f, 0.5f, 9.8f, 4.0f, -1.0f, 3.0f, 10.0f, 2.0f, 0.0f, 1.5f, 5.0f},
                       {6.0f, 5.0f, 0.5f, 1.0f, 4.0f, -1.0f, 3.0f, 2.0f, 2.0f, 0.0f, 1.5f, -5.0f}};
  // Row 0's raw winner 7 was seen: 10 / 1.05 < 9.8, so 3 wins. Row 1's winner 0 was not seen.
  const Ids ids = {{1, 7, 7, 2}, {1, 7, 1, 2}};
  const auto list = make_logits_processors(c, 4);
  EXPECT_EQ(list.names(),
            (std::vector<std::string>{"RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper",
                                      "TopKLogitsWarper", "TopPLogitsWarper"}));
  const at::Tensor processed = list(ids_of(ids), tensor_of(scores));
  const auto got = rows_of(processed);
  const auto penalised = ref_repetition(scores, ids, 1.05f);
  for (std::size_t b = 0; b < got.size(); ++b) {
    const auto want =
        std::max_element(penalised[b].begin(), penalised[b].end()) - penalised[b].begin();
    EXPECT_EQ(std::count_if(got[b].begin(), got[b].end(), [](float v) { return std::isfinite(v); }),
              1);
    EXPECT_TRUE(std::isfinite(got[b][want])) << "row " << b;
  }
  EXPECT_TRUE(std::isfinite(got[0][3]));
  EXPECT_TRUE(std::isfinite(got[1][0]));
  // Sampling from it can only give that token.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const at::Tensor next = at::multinomial(processed.softmax(-1), 1, false, gen).view({2});
  EXPECT_EQ(next[0].item<std::int64_t>(), 3);
  EXPECT_EQ(next[1].item<std::int64_t>(), 0);
}

TEST(LogitsProcessTest, SeededSamplingRepeats) {
  // glimpse samples as GenerationMixin._sample does: multinomial(softmax(processed scores), 1),
  // drawing from at::make_generator<at::CPUGeneratorImpl>(seed).
  GenerationConfig c;
  c.do_sample = true;
  c.temperature = 0.7;
  c.top_k = 5;
  const at::Tensor scores = at::linspace(-3, 3, 40, at::kFloat).view({2, 20}).sin() * 4;
  const at::Tensor processed =
      make_logits_processors(c, 3)(at::zeros({2, 3}, at::kLong), scores.clone());
  const at::Tensor probs = processed.softmax(-1);
  const auto draw = [&](std::uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 32; ++i) {
      const at::Tensor next = at::multinomial(probs, 1, false, gen);
      for (std::int64_t b = 0; b < 2; ++b) ids.push_back(next[b][0].item<std::int64_t>());
    }
    return ids;
  };
  const auto first = draw(1234);
  EXPECT_EQ(draw(1234), first);
  EXPECT_NE(draw(4321), first);
  // Every draw is one of the row's five largest scores.
  const at::Tensor top5 = std::get<1>(at::topk(scores, 5));
  for (std::size_t i = 0; i < first.size(); ++i) {
    const auto row = static_cast<std::int64_t>(i % 2);
    EXPECT_TRUE(top5[row].eq(first[i]).any().item<bool>()) << "draw " << i;
  }
}

// --- GenerationConfig ---------------------------------------------------------------------------

std::string in_dir(const test::TempDir& dir, const std::string& json) {
  std::ofstream(dir.file("generation_config.json")) << json;
  return dir.path().string();
}

template <typename E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "no error of the expected type";
}

TEST(GenerationConfigTest, LoadsQwen2VlGenerationConfig) {
  test::TempDir dir;
  const auto g = GenerationConfig::from_checkpoint(in_dir(dir, R"({
    "bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
    "eos_token_id": [151645, 151643], "repetition_penalty": 1.05, "temperature": 0.1,
    "top_k": 1, "top_p": 0.001, "transformers_version": "4.41.2"})"));
  EXPECT_EQ(g.bos_token_id, 151643);
  EXPECT_EQ(g.pad_token_id, 151643);
  EXPECT_TRUE(g.do_sample);
  EXPECT_EQ(g.eos_token_ids, (std::vector<std::int64_t>{151645, 151643}));
  EXPECT_DOUBLE_EQ(g.repetition_penalty, 1.05);
  EXPECT_DOUBLE_EQ(g.temperature, 0.1);
  EXPECT_EQ(g.top_k, 1);
  EXPECT_DOUBLE_EQ(g.top_p, 0.001);
  EXPECT_EQ(g.max_new_tokens, 32);
  EXPECT_NO_THROW(g.validate());
}

TEST(GenerationConfigTest, DefaultsAndValueForms) {
  test::TempDir empty;
  const auto d = GenerationConfig::from_checkpoint(empty.path().string());  // no file
  EXPECT_EQ(d.top_k, 50);
  EXPECT_FALSE(d.do_sample);
  EXPECT_TRUE(d.eos_token_ids.empty());
  EXPECT_EQ(d.pad_token_id, -1);

  test::TempDir a;
  const auto one = GenerationConfig::from_checkpoint(
      in_dir(a, R"({"eos_token_id": 2, "top_k": null, "some_future_key": {"x": 1},
                    "forced_eos_token_id": 5, "stop_strings": "###", "num_beams": 1,
                    "typical_p": 1.0, "guidance_scale": 1, "forced_decoder_ids": null})"));
  EXPECT_EQ(one.eos_token_ids, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(one.top_k, 0);  // null is transformers' None: no TopKLogitsWarper
  EXPECT_EQ(one.forced_eos_token_ids, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(one.stop_strings, (std::vector<std::string>{"###"}));

  test::TempDir b;
  const auto many = GenerationConfig::from_checkpoint(in_dir(b, R"({
    "eos_token_id": [2, 3], "forced_eos_token_id": [4, 5], "stop_strings": ["a", "b"],
    "bad_words_ids": [[1, 2], [3]], "suppress_tokens": [6], "begin_suppress_tokens": [7],
    "max_length": 64, "max_new_tokens": 8, "min_new_tokens": 2, "min_p": 0.1,
    "no_repeat_ngram_size": 3, "renormalize_logits": true, "remove_invalid_values": true,
    "forced_bos_token_id": 9, "num_return_sequences": 2, "do_sample": true})"));
  EXPECT_EQ(many.eos_token_ids, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(many.forced_eos_token_ids, (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(many.stop_strings, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(many.bad_words_ids, (std::vector<std::vector<std::int64_t>>{{1, 2}, {3}}));
  EXPECT_EQ(many.suppress_tokens, (std::vector<std::int64_t>{6}));
  EXPECT_EQ(many.begin_suppress_tokens, (std::vector<std::int64_t>{7}));
  EXPECT_EQ(many.max_length, 64);
  EXPECT_EQ(many.max_new_tokens, 8);
  EXPECT_EQ(many.min_new_tokens, 2);
  EXPECT_DOUBLE_EQ(many.min_p, 0.1);
  EXPECT_EQ(many.no_repeat_ngram_size, 3);
  EXPECT_TRUE(many.renormalize_logits);
  EXPECT_TRUE(many.remove_invalid_values);
  EXPECT_EQ(many.forced_bos_token_id, 9);
  EXPECT_EQ(many.num_return_sequences, 2);
  EXPECT_NO_THROW(many.validate());
}

TEST(GenerationConfigTest, RefusesWhatGlimpseCannotHonour) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"num_beams", R"({"num_beams": 2})"},
      {"typical_p", R"({"typical_p": 0.9})"},
      {"penalty_alpha", R"({"penalty_alpha": 0.6, "top_k": 4})"},
      {"guidance_scale", R"({"guidance_scale": 3.0})"},
      {"epsilon_cutoff", R"({"epsilon_cutoff": 0.0003})"},
      {"sequence_bias", R"({"sequence_bias": [[[1], -1.0]]})"},
      {"forced_decoder_ids", R"({"forced_decoder_ids": [[1, 2]]})"},
      {"temperature", R"({"temperature": "hot"})"},  // wrong type
      {"bad_words_ids", R"({"bad_words_ids": [1, 2]})"},
  };
  for (const auto& [key, json] : cases) {
    test::TempDir dir;
    const std::string path = in_dir(dir, json);
    const std::string message =
        error_of<ConfigError>([&] { GenerationConfig::from_checkpoint(path); });
    EXPECT_NE(message.find("'" + key + "'"), std::string::npos) << json << " -> " << message;
    EXPECT_NE(message.find("generation_config.json"), std::string::npos) << message;
  }
}

TEST(GenerationConfigTest, ValidateNamesTheField) {
  const std::vector<std::pair<std::string, std::function<void(GenerationConfig&)>>> cases = {
      {"temperature",
       [](GenerationConfig& g) {
         g.do_sample = true;
         g.temperature = 0;
       }},
      {"top_p", [](GenerationConfig& g) { g.top_p = 0; }},
      {"top_p", [](GenerationConfig& g) { g.top_p = 1.5; }},
      {"min_p", [](GenerationConfig& g) { g.min_p = -0.1; }},
      {"min_p", [](GenerationConfig& g) { g.min_p = 1.5; }},
      {"top_k", [](GenerationConfig& g) { g.top_k = -1; }},
      {"repetition_penalty", [](GenerationConfig& g) { g.repetition_penalty = 0; }},
      {"no_repeat_ngram_size", [](GenerationConfig& g) { g.no_repeat_ngram_size = -1; }},
      {"max_new_tokens", [](GenerationConfig& g) { g.max_new_tokens = -1; }},
      {"num_return_sequences", [](GenerationConfig& g) { g.num_return_sequences = 0; }},
      {"num_return_sequences", [](GenerationConfig& g) { g.num_return_sequences = 2; }},
      {"bad_words_ids",
       [](GenerationConfig& g) {
         g.bad_words_ids = {{1}, {}};
       }},
      {"bad_words_ids",
       [](GenerationConfig& g) {
         g.bad_words_ids = {{1, -2}};
       }},
      {"eos_token_id", [](GenerationConfig& g) { g.eos_token_ids = {-3}; }},
      {"suppress_tokens", [](GenerationConfig& g) { g.suppress_tokens = {-1}; }},
      {"pad_token_id", [](GenerationConfig& g) { g.pad_token_id = -2; }},
  };
  for (const auto& [field, set] : cases) {
    GenerationConfig g;
    set(g);
    const std::string message = error_of<InputError>([&] { g.validate(); });
    EXPECT_EQ(message.rfind(field + ":", 0), 0u) << field << " -> " << message;
    EXPECT_THROW(make_logits_processors(g, 1), InputError) << field;
  }
  GenerationConfig greedy;
  greedy.temperature = 0;  // greedy search ignores the temperature
  EXPECT_NO_THROW(greedy.validate());
  GenerationConfig sampled;
  sampled.do_sample = true;
  sampled.num_return_sequences = 2;
  EXPECT_NO_THROW(sampled.validate());
}

// --- token_scores -------------------------------------------------------------------------------

TEST(LogitsProcessTest, TokenScoresOfKnownRows) {
  const float ln2 = std::log(2.0f);
  // Probabilities 1/4, 1/2, 1/4 | 1/2, 0, 1/2 | 1, 0, 0.
  const at::Tensor logits =
      tensor_of({{0.0f, ln2, 0.0f}, {0.0f, -kInf, 0.0f}, {5.0f, -kInf, -kInf}});
  const auto s = token_scores(logits, at::tensor({1, 2, 0}, at::kLong));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0].logprob, std::log(0.5), 1e-6);
  EXPECT_NEAR(s[0].entropy, 1.5 * std::log(2.0), 1e-6);
  EXPECT_NEAR(s[0].margin, std::log(2.0), 1e-6);
  EXPECT_NEAR(s[1].logprob, std::log(0.5), 1e-6);
  EXPECT_NEAR(s[1].entropy, std::log(2.0), 1e-6);  // not NaN: 0 * -inf counts as 0
  EXPECT_EQ(s[1].margin, 0.0);                     // a tie
  EXPECT_NEAR(s[2].logprob, 0.0, 1e-6);
  EXPECT_EQ(s[2].entropy, 0.0);
  EXPECT_EQ(s[2].margin, std::numeric_limits<double>::infinity());
  // A banned token chosen anyway has log-probability -inf.
  EXPECT_EQ(token_scores(logits, at::tensor({1, 1, 1}, at::kLong))[1].logprob,
            -std::numeric_limits<double>::infinity());
  EXPECT_THROW(token_scores(logits, at::tensor({0, 3, 0}, at::kLong)), InputError);
  EXPECT_THROW(token_scores(logits, at::tensor({0, 1}, at::kLong)), InputError);
}

}  // namespace
}  // namespace glimpse::generate
