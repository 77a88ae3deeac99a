// CyberV's Controller logic (spec feedback_loops.md §1(f) properties 3-9): Score Forest, the
// key-frame feedback, the round-2 gate, detect_repetition and the key-frame timestamps.
#include "methods/feedback/cyberv_score.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "glimpse/core/error.h"

namespace glimpse::methods::feedback {
namespace {

// Attention groups of zeros with room for the 32 video segments and `k2` ASR spans.
AttentionGroups zero_attn(std::int64_t heads, std::int64_t k2, std::int64_t cols = 0) {
  AttentionGroups a;
  a.heads = heads;
  a.rows = 2;
  a.cols = cols > 0 ? cols : kAsrFirstCol + k2 + 3;
  a.asr_segments = k2;
  a.values.assign(static_cast<std::size_t>(a.heads * a.rows * a.cols), 0.0);
  return a;
}

double& cell(AttentionGroups& a, std::int64_t head, std::int64_t row, std::int64_t col) {
  return a.values[static_cast<std::size_t>((head * a.rows + row) * a.cols + col)];
}

CandidateSignals candidate(const std::string& pred, std::optional<double> prob,
                           bool repetition = false,
                           std::optional<AttentionGroups> attn = std::nullopt) {
  return CandidateSignals{pred, prob, repetition, std::move(attn)};
}

// The golden candidates of property 3: a base at 0.01 everywhere, each CoT candidate shifted so
// that the mean-over-heads drift (video + ASR columns) is `drifts[i - 1]`. Columns outside the
// drift (vision end, ASR beyond K2) and row 1 get large shifts that must not count.
std::vector<CandidateSignals> golden_candidates() {
  const std::int64_t heads = 2, k2 = 2;
  AttentionGroups base = zero_attn(heads, k2);
  for (double& v : base.values) v = 0.01;
  const std::vector<std::string> preds = {"A", "A", "B", "A"};
  const std::vector<double> probs = {0.8, 0.6, 0.9, 0.3};
  const std::vector<bool> repetition = {false, false, false, true};
  const std::vector<double> drifts = {0.05, -0.2, 0.0};
  std::vector<CandidateSignals> out = {candidate(preds[0], probs[0], repetition[0], base)};
  for (std::size_t i = 1; i < preds.size(); ++i) {
    AttentionGroups a = base;
    const double d = drifts[i - 1];
    // Head 0 carries 3/4 of the video share and head 1 1/4, so only the mean gives d / 2.
    cell(a, 0, 0, kVideoFirstCol + 5) += 0.75 * d;
    cell(a, 1, 0, kVideoFirstCol + 5) += 0.25 * d;
    cell(a, 0, 0, kAsrFirstCol + 1) += 0.5 * d;
    cell(a, 1, 0, kAsrFirstCol + 1) += 0.5 * d;
    cell(a, 0, 0, kVideoFirstCol + kVideoSegments) -= 5.0;  // vision end
    cell(a, 1, 0, kAsrFirstCol + k2) -= 5.0;                // past the K2 spans
    cell(a, 0, 1, kVideoFirstCol) -= 5.0;                   // row 1
    out.push_back(candidate(preds[i], probs[i], repetition[i], a));
  }
  return out;
}

TEST(CyberVScore, GoldenVector) {
  const std::vector<CandidateSignals> c = golden_candidates();
  const ScoreForestResult r = score_forest(c, 0.3);
  EXPECT_EQ(r.s1, (std::vector<double>{0.8, 0.6, 0.9, 0.3}));
  EXPECT_EQ(r.s2, (std::vector<double>{1, 1, 1, 0}));
  EXPECT_EQ(r.s3, (std::vector<double>{1, 1, 1, 0}));
  EXPECT_EQ(r.s4, (std::vector<double>{1, 1, 0, 1}));
  EXPECT_EQ(r.s5, (std::vector<double>{0.75, 0.5, 1.0, 0.25}));
  EXPECT_TRUE(std::isnan(r.drift[0]));
  EXPECT_NEAR(r.drift[1], 0.05, 1e-12);
  EXPECT_NEAR(r.drift[2], -0.2, 1e-12);
  EXPECT_NEAR(r.drift[3], 0.0, 1e-12);
  const std::vector<double> scores = {0.91, 0.82, 0.78, 0.31};
  ASSERT_EQ(r.scores.size(), scores.size());
  for (std::size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(r.scores[i], scores[i], 1e-12);
  ASSERT_EQ(r.option_scores.size(), 2u);
  EXPECT_EQ(r.option_scores[0].first, "A");
  EXPECT_NEAR(r.option_scores[0].second, 2.04, 1e-12);
  EXPECT_EQ(r.option_scores[1].first, "B");
  EXPECT_NEAR(r.option_scores[1].second, 0.78, 1e-12);
  EXPECT_EQ(r.best, "A");
  EXPECT_EQ(r.index, 0);
  EXPECT_NEAR(r.threshold, 1.2, 1e-12);
  EXPECT_TRUE(r.stop);

  const ScoreForestResult high = score_forest(c, 0.6);  // threshold 2.4 > 2.04
  EXPECT_FALSE(high.stop);
  EXPECT_EQ(high.best, "A");
  EXPECT_EQ(high.index, 0);
}

TEST(CyberVScore, AllOriginSetsEveryS4) {
  const ScoreForestResult r = score_forest(golden_candidates(), 0.3, /*all_origin=*/true);
  EXPECT_EQ(r.s4, (std::vector<double>{1, 1, 1, 1}));
  EXPECT_NEAR(r.scores[2], 0.98, 1e-12);
}

TEST(CyberVScore, TiesGoToTheFirstInserted) {
  // Scores 0.2 * (0.25 + 1 + 1 + 1 + 0.5) and 0.2 * (0.75 + 1 + 0 + 1 + 1) are both exactly 0.75.
  const std::vector<CandidateSignals> c = {candidate("B", 0.25), candidate("A", 0.75, true)};
  const ScoreForestResult r = score_forest(c, 0.0, /*all_origin=*/true);
  ASSERT_EQ(r.scores[0], r.scores[1]);
  EXPECT_EQ(r.best, "B");
  EXPECT_EQ(r.index, 0);
  const std::vector<CandidateSignals> same = {candidate("A", 0.25), candidate("A", 0.75, true)};
  EXPECT_EQ(score_forest(same, 0.0, true).index, 0);
}

TEST(CyberVScore, MissingSignals) {
  // No probability: 1e-4, ranked lowest; no attention: s4 = 0 for CoT candidates only.
  const std::vector<CandidateSignals> c = {candidate("A", std::nullopt), candidate("A", 0.5),
                                           candidate("B", 0.4)};
  const ScoreForestResult r = score_forest(c, 0.5);
  EXPECT_EQ(r.s1[0], 1e-4);
  EXPECT_EQ(r.s4, (std::vector<double>{1, 0, 0}));
  EXPECT_EQ(r.s5[0], 1.0 / 3.0);
  // Attention with a row count other than 2 counts as missing.
  AttentionGroups three = zero_attn(1, 0);
  three.rows = 3;
  three.values.assign(static_cast<std::size_t>(three.cols * 3), 0.0);
  const std::vector<CandidateSignals> rows = {candidate("A", 0.5, false, zero_attn(1, 0)),
                                              candidate("A", 0.5, false, three)};
  EXPECT_EQ(score_forest(rows, 0.5).s4, (std::vector<double>{1, 0}));
}

TEST(CyberVScore, ThetaBounds) {
  const std::vector<std::vector<CandidateSignals>> sets = {
      golden_candidates(),
      {candidate("A", 1.0), candidate("A", 1.0), candidate("A", 1.0)},
      {candidate("C", 0.2, true), candidate("D", std::nullopt, true)},
  };
  for (const auto& c : sets) {
    const ScoreForestResult at_one = score_forest(c, 1.0);
    for (const double s : at_one.scores) EXPECT_LE(s, 1.0);
    EXPECT_FALSE(at_one.stop);  // S <= n, strict >
    EXPECT_FALSE(score_forest(c, 1.5).stop);
    EXPECT_TRUE(score_forest(c, 0.0).stop);  // every score >= 0.2 / n > 0
    bool stopped = true;
    for (double theta = 0.0; theta <= 1.2; theta += 0.05) {
      const bool stop = score_forest(c, theta).stop;
      EXPECT_TRUE(stopped || !stop) << "raising theta to " << theta << " stopped again";
      stopped = stop;
    }
  }
}

TEST(CyberVScore, RejectsBadInputs) {
  EXPECT_THROW(score_forest({}, 0.3), InputError);
  EXPECT_THROW(score_forest(golden_candidates(), std::numeric_limits<double>::quiet_NaN()),
               InputError);
  EXPECT_THROW(score_forest({candidate("A", 1.5)}, 0.3), InputError);
  EXPECT_THROW(score_forest({candidate("A", 0.0), candidate("A", 0.5)}, 0.3), InputError);
  AttentionGroups bad = zero_attn(2, 0);
  bad.values.pop_back();
  EXPECT_THROW(score_forest({candidate("A", 0.5, false, bad)}, 0.3), InputError);
  // Too few columns for the 32 segments.
  const std::vector<CandidateSignals> narrow = {candidate("A", 0.5, false, zero_attn(1, 0, 20)),
                                                candidate("A", 0.5, false, zero_attn(1, 0, 20))};
  EXPECT_THROW(score_forest(narrow, 0.3), InputError);
  EXPECT_THROW(key_frames(narrow, 64, 1.0, {}), InputError);
  EXPECT_THROW(key_frames(golden_candidates(), 48, 1.0, {}), InputError);
  EXPECT_THROW(key_frames(golden_candidates(), 64, 0.0, {}), InputError);
}

// A base of zeros and one CoT candidate whose per-segment drop (summed over two heads) is `d`.
std::vector<CandidateSignals> video_drop(const std::vector<double>& d, std::int64_t k2 = 0,
                                         const std::vector<double>& asr = {}) {
  AttentionGroups base = zero_attn(2, k2);
  AttentionGroups cot = base;
  for (std::int64_t c = 0; c < kVideoSegments; ++c) {
    cell(cot, 0, 0, kVideoFirstCol + c) = 0.5 * d[static_cast<std::size_t>(c)];
    cell(cot, 1, 0, kVideoFirstCol + c) = 0.5 * d[static_cast<std::size_t>(c)];
  }
  for (std::int64_t c = 0; c < k2; ++c)
    cell(cot, 1, 0, kAsrFirstCol + c) = asr[static_cast<std::size_t>(c)];
  return {candidate("A", 0.9, false, base), candidate("B", 0.5, false, cot)};
}

TEST(CyberVScore, KeyFramesVisualMapping) {
  std::vector<double> d(32);
  for (std::size_t c = 0; c < d.size(); ++c) d[c] = 1.0 + 0.01 * static_cast<double>(c);
  d[3] = -0.5;
  d[10] = -0.2;
  d[0] = 0.0;  // in the bottom 5 but not negative
  d[1] = 0.05;
  d[2] = 0.1;
  EXPECT_EQ(key_frames(video_drop(d), 64, 0.5, {}), (std::vector<std::int64_t>{6, 7, 20, 21}));
  EXPECT_EQ(key_frames(video_drop(d), 32, 0.5, {}), (std::vector<std::int64_t>{3, 10}));
  // Only the 5 lowest are candidates: a sixth negative segment is dropped.
  std::vector<double> six(32, 1.0);
  for (std::size_t c = 0; c < 6; ++c) six[c] = -0.1 * static_cast<double>(c + 1);
  EXPECT_EQ(key_frames(video_drop(six), 32, 1.0, {}), (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  // D >= 0 everywhere: no visual key frames.
  EXPECT_TRUE(key_frames(video_drop(std::vector<double>(32, 0.0)), 64, 1.0, {}).empty());
}

TEST(CyberVScore, KeyFramesSumOverCandidates) {
  AttentionGroups base = zero_attn(2, 0), one = base, two = base;
  cell(one, 0, 0, kVideoFirstCol + 7) = -0.3;
  cell(two, 1, 0, kVideoFirstCol + 7) = 0.5;  // segment 7 sums to +0.2
  cell(one, 0, 0, kVideoFirstCol + 9) = -0.1;
  cell(two, 1, 0, kVideoFirstCol + 9) = -0.1;  // segment 9 sums to -0.2
  const std::vector<CandidateSignals> c = {
      candidate("A", 0.9, false, base), candidate("A", 0.8, false, one),
      candidate("B", 0.7, false, two), candidate("B", 0.7, false, std::nullopt)};
  EXPECT_EQ(key_frames(c, 64, 1.0, {}), (std::vector<std::int64_t>{18, 19}));
}

TEST(CyberVScore, KeyFramesAsrSide) {
  // All drops positive (no sign filter), K2 = 3 <= topk so every span is used; fps 0.5 puts frame
  // f at 2f seconds. (0, 4] -> 1, 2; (10, 14] -> 6, 7; (20, 60] -> 11..30; capped at 10.
  const std::vector<double> flat(32, 0.0);
  const std::vector<std::pair<double, double>> spans = {{0, 4}, {10, 14}, {20, 60}};
  EXPECT_EQ(key_frames(video_drop(flat, 3, {0.5, 0.2, 0.9}), 64, 0.5, spans),
            (std::vector<std::int64_t>{1, 2, 6, 7, 11, 12, 13, 14, 15, 16}));
  // K2 = 6 > topk: the highest drop (span 2) is left out.
  const std::vector<std::pair<double, double>> six = {{0, 4},     {10, 14}, {20, 60},
                                                      {100, 102}, {30, 32}, {40, 41}};
  EXPECT_EQ(key_frames(video_drop(flat, 6, {0.5, 0.2, 0.9, 0.0, 0.3, 0.1}), 64, 0.5, six),
            (std::vector<std::int64_t>{1, 2, 6, 7, 16, 51}));
  // A selected span missing from the prompt's spans.
  EXPECT_THROW(key_frames(video_drop(flat, 3, {0.5, 0.2, 0.9}), 64, 0.5, {{0, 4}}), InputError);
}

TEST(CyberVScore, KeyFramesTooManyKeepsTheVisualOnes) {
  std::vector<double> d(32, 1.0);
  for (std::size_t c = 0; c < 10; ++c) d[c] = -1.0 + 0.01 * static_cast<double>(c);
  // topk 10: 20 visual frames and 20 ASR frames (30..49), 40 > 64 / 2.
  const std::vector<std::int64_t> frames =
      key_frames(video_drop(d, 1, {0.3}), 64, 1.0, {{29, 63}}, /*topk=*/10);
  std::vector<std::int64_t> visual(20);
  for (std::size_t f = 0; f < visual.size(); ++f) visual[f] = static_cast<std::int64_t>(f);
  EXPECT_EQ(frames, visual);
}

TEST(CyberVScore, NoBaseAttentionNoKeyFrames) {
  std::vector<double> d(32, -1.0);
  std::vector<CandidateSignals> c = video_drop(d);
  c[0].attn.reset();
  EXPECT_TRUE(key_frames(c, 64, 1.0, {}).empty());
  const ScoreForestResult r = score_forest(c, 1.0);
  EXPECT_EQ(r.s4, (std::vector<double>{1, 0}));
  EXPECT_FALSE(r.stop);
}

TEST(CyberVScore, Round2Gate) {
  const std::vector<std::string> bon = {"A", "A", "B", "C"};
  EXPECT_EQ(round2_gate("D", bon), Round2Pick::Round1Best);
  EXPECT_EQ(round2_gate("B", bon), Round2Pick::Round2);
  EXPECT_EQ(round2_gate("No Answer Found", bon), Round2Pick::Round1Best);
  EXPECT_EQ(round2_gate("No Answer Found", {"A", "No Answer Found", "B"}), Round2Pick::Round1Best);
  // Two candidates: round 2 wins unless it is unparseable.
  EXPECT_EQ(round2_gate("D", {"A", "B"}), Round2Pick::Round2);
  EXPECT_EQ(round2_gate("No Answer Found", {"A", "B"}), Round2Pick::Candidate1);
  EXPECT_EQ(round2_gate("No Answer Found", {"A", "No Answer Found"}), Round2Pick::Candidate0);
  EXPECT_THROW(round2_gate("A", {}), InputError);
}

TEST(CyberVScore, DetectRepetition) {
  std::string ab;
  for (int i = 0; i < 10; ++i) ab += "ab";
  EXPECT_FALSE(detect_repetition(ab));  // 20 characters
  const std::string fifteen = "abcdefghijklmno";
  EXPECT_TRUE(detect_repetition(fifteen + fifteen + fifteen + fifteen + fifteen));
  EXPECT_FALSE(detect_repetition(fifteen + fifteen + fifteen + fifteen));  // 4 times
  EXPECT_FALSE(detect_repetition("abcdefghijklmnopqrstuvwxyz01234"));      // 31, no repeat
  EXPECT_TRUE(detect_repetition(ab + ab + ab + ab));  // overlapping occurrences count
  // Characters, not bytes: 20 two-byte characters are 20 characters.
  std::string accents;
  for (int i = 0; i < 20; ++i) accents += "é";
  EXPECT_FALSE(detect_repetition(accents));
}

TEST(CyberVScore, Timestamps) {
  EXPECT_EQ(frame_timestamp(75, 0.5), "2:30");
  EXPECT_EQ(frame_timestamp(0, 2.0), "0:00");
  EXPECT_EQ(format_timestamp(605.0), "10:05");
  EXPECT_EQ(format_timestamp(59.6), "1:00");
  EXPECT_EQ(format_timestamp(2.5), "0:02");  // Python's round: half to even
  EXPECT_EQ(format_timestamp(3.5), "0:04");
  EXPECT_THROW(format_timestamp(-1.0), InputError);
  EXPECT_THROW(frame_timestamp(1, 0.0), InputError);
}

TEST(CyberVScore, AsrSegmentsFromPrompt) {
  const std::string prompt =
      "Audio transcripts of the video:\n[0:00 -> 0:04]: hi\n[1:05 -> 1:10]: x [bad] [2:3 -> 2:4]"
      " [3:00->3:01]\nQuestion:";
  const std::vector<std::pair<double, double>> want = {{0, 4}, {65, 70}, {123, 124}};
  EXPECT_EQ(parse_asr_segments(prompt), want);
}

}  // namespace
}  // namespace glimpse::methods::feedback
