#pragma once

// CyberV's Controller as pure logic (spec feedback_loops.md §1(b) Steps 2-5; CyberV utils.py at
// commit bbaa1ed): the repetition signal, Score Forest, the attention-drift key frames, the
// key-frame timestamps and the driver's round-2 acceptance gate. No torch: the Sensor hands over
// the grouped attention as plain numbers.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace glimpse::methods::feedback {

// Column layout of the grouped attention (CyberV model_transformers.py:process_attention): col 0
// text before the vision start, col 1 <|vision_start|>, cols 2..33 the 32 temporal video segments,
// col 34 <|vision_end|>, col 35 the "Audio transcripts" header, cols 36..36+K2-1 the K2 ASR
// timestamp spans, then the question and the rest.
inline constexpr std::int64_t kVideoFirstCol = 2;
inline constexpr std::int64_t kVideoSegments = 32;
inline constexpr std::int64_t kAsrFirstCol = 36;

// One candidate's last-layer attention summed over token groups (CyberV
// model_transformers.py:process_attention / process_attention_2). Row 0 is the step that emitted
// the answer token, row 1 the mean over the later generated steps; the official code only ever
// makes 2 rows, and Score Forest treats any other count as missing attention.
struct AttentionGroups {
  std::int64_t heads = 0;
  std::int64_t rows = 2;
  std::int64_t cols = 0;
  std::vector<double> values;  // [heads][rows][cols], row-major
  // K2: ASR timestamp spans found in the prompt (asr_token_num). Only the base candidate's is
  // read, as in the official code.
  std::int64_t asr_segments = 0;

  double at(std::int64_t head, std::int64_t row, std::int64_t col) const {
    return values[static_cast<std::size_t>((head * rows + row) * cols + col)];
  }
};

// What the Sensor reports for one candidate (CyberV model_transformers.py:__call__'s final_out).
struct CandidateSignals {
  std::string pred;            // parsed answer (parse_choice)
  std::optional<double> prob;  // softmax probability of the answer token; none if not found
  bool repetition = false;     // detect_repetition on the generated text
  std::optional<AttentionGroups> attn;  // none when the grouping failed or was not computed
};

struct ScoreForestResult {
  std::vector<double> s1, s2, s3, s4, s5, scores;
  // Attention drift of candidate i vs the base (the s4 input); NaN where it was not computed
  // (i = 0, missing attention, all_origin).
  std::vector<double> drift;
  std::vector<std::pair<std::string, double>> option_scores;  // S(option), insertion order
  std::string best;
  std::int64_t index = 0;  // best-scored candidate predicting `best`
  bool stop = false;       // S(best) > threshold: return candidate `index`
  double threshold = 0.0;  // n * theta
};

// CyberV utils.py:detect_repetition: false for 30 characters or fewer, else true iff some
// substring of 15..29 characters (Unicode code points of the UTF-8 text) occurs at least 5 times,
// overlapping occurrences counted.
bool detect_repetition(const std::string& text);

// The key-frame text's "m:ss" (CyberV model_transformers.py:__call__): seconds rounded half to
// even as Python's round(), then minutes and zero-padded seconds.
std::string format_timestamp(double seconds);
// round(frame * (1 / fps)) formatted: frame 75 at fps 0.5 -> "2:30".
std::string frame_timestamp(std::int64_t frame, double fps);

// CyberV utils.py:get_segments: every "[m:ss -> m:ss]" of the prompt as (start, end) seconds, in
// order (ASCII digits and whitespace only, where Python's \d and \s also take Unicode ones).
std::vector<std::pair<double, double>> parse_asr_segments(const std::string& prompt);

// CyberV utils.py:select_output with select_method "score_forest" (Step 3). n is the number of
// candidates (the official n argument, always equal to it in the drivers); candidate 0 is the
// base ("origin") answer. all_origin sets every s4 to 1 (WorldSense's round-2 re-scoring).
ScoreForestResult score_forest(const std::vector<CandidateSignals>& candidates, double theta,
                               bool all_origin = false);

// The self-correction branch of CyberV utils.py:select_output (Step 4): key frame indices in
// [0, max_frames), ascending; empty when the base has no attention (then the official returns the
// best candidate instead of the key-frame tuple). max_frames is 64 (segment c -> frames 2c, 2c+1)
// or 32 (segment c -> frame c). asr_segments_seconds are get_segments of the prompt text.
// np.argsort's default sort is not stable; this uses a stable ascending sort, which agrees
// whenever the summed drifts are distinct.
std::vector<std::int64_t> key_frames(
    const std::vector<CandidateSignals>& candidates, std::int64_t max_frames, double fps,
    const std::vector<std::pair<double, double>>& asr_segments_seconds, std::int64_t topk = 5);

// Which answer the driver keeps after the key-frame round (CyberV test/test_*.py:process_batch).
enum class Round2Pick {
  Round2,      // the round-2 answer
  Round1Best,  // select_output's best round-1 candidate (the tuple's output[2])
  Candidate1,  // round-1 candidate 1 (two candidates only)
  Candidate0,  // round-1 candidate 0, the base (two candidates only)
};

// Step 5's acceptance gate. With exactly two round-1 candidates: the round-2 answer unless it is
// "No Answer Found", then candidate 1, or candidate 0 if that is unparseable too. Otherwise: the
// round-2 answer only if it is among the round-1 predictions and is not "No Answer Found".
// (WorldSense with n_loop2 > 1 re-scores round 2 with score_forest(..., 0.0, true) instead.)
Round2Pick round2_gate(const std::string& round2_pred,
                       const std::vector<std::string>& round1_preds);

}  // namespace glimpse::methods::feedback
