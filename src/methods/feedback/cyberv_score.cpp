#include "methods/feedback/cyberv_score.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <limits>
#include <numeric>
#include <set>
#include <string_view>
#include <unordered_map>

#include "glimpse/core/error.h"
#include "methods/feedback/answer_parse.h"
#include "text/unicode.h"

namespace glimpse::methods::feedback {
namespace {

// numpy's np.sum of a contiguous float64 array (umath loops_utils.h.src:pairwise_sum): eight
// interleaved accumulators up to 128 values, recursive halves above. The drift is np.sum of a
// difference row, so its rounding follows numpy's order.
double numpy_sum(const double* a, std::size_t n) {
  if (n < 8) {
    double res = 0.0;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (std::size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_sum(a, n2) + numpy_sum(a + n2, n - n2);
}

// Row 0 of `attn` summed over heads in head order (np.sum(attn, axis=0)[0, first:first+count]);
// `mean` divides by the head count (np.mean).
std::vector<double> head_row(const AttentionGroups& attn, std::int64_t first, std::int64_t count,
                             bool mean) {
  std::vector<double> out(static_cast<std::size_t>(count), 0.0);
  for (std::int64_t h = 0; h < attn.heads; ++h) {
    for (std::int64_t c = 0; c < count; ++c)
      out[static_cast<std::size_t>(c)] += attn.at(h, 0, first + c);
  }
  if (mean) {
    for (double& v : out) v /= static_cast<double>(attn.heads);
  }
  return out;
}

std::vector<double> difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i] - b[i];
  return out;
}

// Where numpy slicing would silently shorten the slice and then fail to broadcast, say so.
void require_cols(const AttentionGroups& attn, std::int64_t needed, std::size_t candidate) {
  if (attn.cols < needed) {
    throw InputError("candidates[" + std::to_string(candidate) + "].attn: expected at least " +
                     std::to_string(needed) + " column groups (32 video segments from column " +
                     "2, ASR spans from column 36), found " + std::to_string(attn.cols));
  }
}

void validate(const std::vector<CandidateSignals>& candidates) {
  if (candidates.empty()) throw InputError("candidates: expected at least the base candidate");
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const CandidateSignals& c = candidates[i];
    const std::string name = "candidates[" + std::to_string(i) + "]";
    if (c.prob && !(std::isfinite(*c.prob) && *c.prob >= 0.0 && *c.prob <= 1.0)) {
      throw InputError(name + ".prob: expected a probability in [0, 1], found " +
                       std::to_string(*c.prob));
    }
    if (!c.attn) continue;
    const AttentionGroups& a = *c.attn;
    if (a.heads <= 0 || a.rows <= 0 || a.cols <= 0) {
      throw InputError(name + ".attn: expected positive heads, rows and cols, found " +
                       std::to_string(a.heads) + " x " + std::to_string(a.rows) + " x " +
                       std::to_string(a.cols));
    }
    if (a.values.size() != static_cast<std::size_t>(a.heads * a.rows * a.cols)) {
      throw InputError(name + ".attn.values: expected heads * rows * cols = " +
                       std::to_string(a.heads * a.rows * a.cols) + " values, found " +
                       std::to_string(a.values.size()));
    }
    if (a.asr_segments < 0) {
      throw InputError(name + ".attn.asr_segments: expected K2 >= 0, found " +
                       std::to_string(a.asr_segments));
    }
  }
}

// Python's sorted(range(n), key=v.__getitem__): a stable ascending order.
std::vector<std::size_t> stable_argsort(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  return order;
}

// Python's round() of a float to an int: half to even, independent of the FPU rounding mode.
std::int64_t round_half_even(double x) {
  const double floor = std::floor(x);
  const double diff = x - floor;
  double r = floor;
  if (diff > 0.5 || (diff == 0.5 && std::fmod(floor, 2.0) != 0.0)) r = floor + 1.0;
  return static_cast<std::int64_t>(r);
}

}  // namespace

bool detect_repetition(const std::string& text) {
  // Python's len and slicing count code points.
  std::u32string cps;
  cps.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) cps.push_back(text::detail::next_code_point(text, i));
  const std::size_t n = cps.size();
  if (n <= 30) return false;
  // Substrings of different lengths never collide, so one map per length gives the same answer
  // as the official single dict; stop at the first count of 5.
  const std::u32string_view view(cps);
  for (std::size_t length = 15; length < 30; ++length) {
    std::unordered_map<std::u32string_view, int> counts;
    counts.reserve(n);
    for (std::size_t i = 0; i + length <= n; ++i) {
      if (++counts[view.substr(i, length)] >= 5) return true;
    }
  }
  return false;
}

std::string format_timestamp(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0.0) {
    throw InputError("seconds: expected a finite time >= 0, found " + std::to_string(seconds));
  }
  const std::int64_t t = round_half_even(seconds);
  const std::int64_t secs = t % 60;
  return std::to_string(t / 60) + ":" + (secs < 10 ? "0" : "") + std::to_string(secs);
}

std::string frame_timestamp(std::int64_t frame, double fps) {
  if (!std::isfinite(fps) || fps <= 0.0) {
    throw InputError("fps: expected a positive frame rate, found " + std::to_string(fps));
  }
  if (frame < 0) throw InputError("frame: expected an index >= 0, found " + std::to_string(frame));
  // interval = 1/fps; round(frame * interval), in that order.
  const double interval = 1.0 / fps;
  return format_timestamp(static_cast<double>(frame) * interval);
}

std::vector<std::pair<double, double>> parse_asr_segments(const std::string& prompt) {
  // re.findall(r'\[(\d+):(\d+)\s->\s(\d+):(\d+)\]', text) with int() of each group.
  std::vector<std::pair<double, double>> out;
  const auto digits = [&](std::size_t& i, double& value) {
    const std::size_t begin = i;
    value = 0.0;
    while (i < prompt.size() && prompt[i] >= '0' && prompt[i] <= '9') {
      value = value * 10.0 + (prompt[i] - '0');
      ++i;
    }
    return i > begin;
  };
  const auto literal = [&](std::size_t& i, char c) {
    if (i < prompt.size() && prompt[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  const auto space = [&](std::size_t& i) {
    if (i < prompt.size() &&
        std::string_view(" \t\n\r\f\v").find(prompt[i]) != std::string_view::npos) {
      ++i;
      return true;
    }
    return false;
  };
  for (std::size_t start = prompt.find('['); start != std::string::npos;
       start = prompt.find('[', start + 1)) {
    std::size_t i = start + 1;
    double m0 = 0, s0 = 0, m1 = 0, s1 = 0;
    if (digits(i, m0) && literal(i, ':') && digits(i, s0) && space(i) && literal(i, '-') &&
        literal(i, '>') && space(i) && digits(i, m1) && literal(i, ':') && digits(i, s1) &&
        literal(i, ']')) {
      out.emplace_back(m0 * 60.0 + s0, m1 * 60.0 + s1);
      start = i - 1;  // findall resumes after the match
    }
  }
  return out;
}

ScoreForestResult score_forest(const std::vector<CandidateSignals>& candidates, double theta,
                               bool all_origin) {
  validate(candidates);
  if (!std::isfinite(theta)) {
    throw InputError("theta: expected a finite threshold factor, found " + std::to_string(theta));
  }
  const std::size_t n = candidates.size();
  ScoreForestResult r;
  // s1: the answer-token probability, 1e-4 when missing.
  for (const CandidateSignals& c : candidates) r.s1.push_back(c.prob.value_or(1e-4));
  if (r.s1[0] == 0.0) {
    throw InputError("candidates[0].prob: the base probability divides the s2 drop, found 0");
  }
  // s2: 0 on a relative drop of more than half against the base.
  for (std::size_t i = 0; i < n; ++i) {
    r.s2.push_back((r.s1[i] - r.s1[0]) / r.s1[0] < -0.5 ? 0.0 : 1.0);
  }
  // s3: 0 on repetition.
  for (const CandidateSignals& c : candidates) r.s3.push_back(c.repetition ? 0.0 : 1.0);
  // s4: 0 when the answer row's attention on the video segments and ASR spans fell by more than
  // 0.1 (mean over heads) against the base.
  r.s4.assign(n, 1.0);
  r.drift.assign(n, std::numeric_limits<double>::quiet_NaN());
  if (!all_origin) {
    const std::optional<AttentionGroups>& base = candidates[0].attn;
    for (std::size_t i = 1; i < n; ++i) {
      const std::optional<AttentionGroups>& attn = candidates[i].attn;
      if (!base || !attn || base->rows != 2 || attn->rows != 2) {
        r.s4[i] = 0.0;
        continue;
      }
      const std::int64_t k2 = base->asr_segments;
      const std::int64_t needed = k2 > 0 ? kAsrFirstCol + k2 : kVideoFirstCol + kVideoSegments;
      require_cols(*base, needed, 0);
      require_cols(*attn, needed, i);
      const std::vector<double> video =
          difference(head_row(*attn, kVideoFirstCol, kVideoSegments, true),
                     head_row(*base, kVideoFirstCol, kVideoSegments, true));
      double drift = numpy_sum(video.data(), video.size());
      if (k2 > 0) {
        const std::vector<double> asr = difference(head_row(*attn, kAsrFirstCol, k2, true),
                                                   head_row(*base, kAsrFirstCol, k2, true));
        drift += numpy_sum(asr.data(), asr.size());
      }
      r.drift[i] = drift;
      r.s4[i] = drift < -0.1 ? 0.0 : 1.0;
    }
  }
  // s5: rank of s1 (1 = lowest, stable) over n.
  const std::vector<std::size_t> order = stable_argsort(r.s1);
  r.s5.assign(n, 0.0);
  for (std::size_t rank = 0; rank < n; ++rank) {
    r.s5[order[rank]] = static_cast<double>(rank + 1) / static_cast<double>(n);
  }
  // Every beta is 0.2; the sum is evaluated left to right as in the official expression.
  for (std::size_t i = 0; i < n; ++i) {
    r.scores.push_back(0.2 * r.s1[i] + 0.2 * r.s2[i] + 0.2 * r.s3[i] + 0.2 * r.s4[i] +
                       0.2 * r.s5[i]);
  }
  // S(option) in first-seen order; best by strict > from 0, so the first-inserted wins ties.
  for (std::size_t i = 0; i < n; ++i) {
    auto it = std::find_if(r.option_scores.begin(), r.option_scores.end(),
                           [&](const auto& o) { return o.first == candidates[i].pred; });
    if (it == r.option_scores.end()) {
      r.option_scores.emplace_back(candidates[i].pred, 0.0);
      it = std::prev(r.option_scores.end());
    }
    it->second += r.scores[i];
  }
  double max_score = 0.0;
  bool found = false;
  for (const auto& [option, score] : r.option_scores) {
    if (score > max_score) {
      max_score = score;
      r.best = option;
      found = true;
    }
  }
  // Every score is at least 0.2 / n (s5), so some option always exceeds 0.
  if (!found) throw Error("score_forest: no option scored above 0");
  // The best-scored candidate of that option, the first on ties.
  bool have_index = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (candidates[i].pred != r.best) continue;
    if (!have_index || r.scores[i] > r.scores[static_cast<std::size_t>(r.index)]) {
      r.index = static_cast<std::int64_t>(i);
      have_index = true;
    }
  }
  r.threshold = static_cast<double>(n) * theta;
  r.stop = max_score > r.threshold;
  return r;
}

std::vector<std::int64_t> key_frames(
    const std::vector<CandidateSignals>& candidates, std::int64_t max_frames, double fps,
    const std::vector<std::pair<double, double>>& asr_segments_seconds, std::int64_t topk) {
  validate(candidates);
  if (max_frames != 64 && max_frames != 32) {
    throw InputError("max_frames: expected 32 or 64 sampled frames, found " +
                     std::to_string(max_frames));
  }
  if (!std::isfinite(fps) || fps <= 0.0) {
    throw InputError("fps: expected a positive frame rate, found " + std::to_string(fps));
  }
  if (topk < 0) throw InputError("topk: expected >= 0, found " + std::to_string(topk));
  const std::optional<AttentionGroups>& base = candidates[0].attn;
  if (!base) return {};
  // Per-candidate drops, summed over heads here (not the mean Step 3 uses).
  const std::int64_t k2 = base->asr_segments;
  std::vector<std::vector<double>> video_diffs, asr_diffs;
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    const std::optional<AttentionGroups>& attn = candidates[i].attn;
    if (!attn || base->rows != 2 || attn->rows != 2) continue;
    require_cols(*base, kVideoFirstCol + kVideoSegments, 0);
    require_cols(*attn, kVideoFirstCol + kVideoSegments, i);
    video_diffs.push_back(difference(head_row(*attn, kVideoFirstCol, kVideoSegments, false),
                                     head_row(*base, kVideoFirstCol, kVideoSegments, false)));
    if (k2 > 0) {
      require_cols(*base, kAsrFirstCol + k2, 0);
      require_cols(*attn, kAsrFirstCol + k2, i);
      asr_diffs.push_back(difference(head_row(*attn, kAsrFirstCol, k2, false),
                                     head_row(*base, kAsrFirstCol, k2, false)));
    }
  }
  // np.sum(diffs, axis=0): candidates added in order.
  const auto total = [](const std::vector<std::vector<double>>& diffs) {
    std::vector<double> sum(diffs[0].size(), 0.0);
    for (const std::vector<double>& d : diffs) {
      for (std::size_t c = 0; c < d.size(); ++c) sum[c] += d[c];
    }
    return sum;
  };
  // Visual side: the topk lowest segments, only those that dropped, in segment order.
  std::vector<std::int64_t> visual;
  if (!video_diffs.empty()) {
    const std::vector<double> d = total(video_diffs);
    const std::vector<std::size_t> order = stable_argsort(d);
    std::vector<std::size_t> segments;
    for (std::size_t k = 0; k < order.size() && k < static_cast<std::size_t>(topk); ++k) {
      if (d[order[k]] < 0.0) segments.push_back(order[k]);
    }
    std::sort(segments.begin(), segments.end());
    for (const std::size_t s : segments) {
      const auto c = static_cast<std::int64_t>(s);
      if (max_frames == 64) {
        visual.push_back(2 * c);
        visual.push_back(2 * c + 1);
      } else {
        visual.push_back(c);
      }
    }
  }
  // ASR side: the min(topk, K2) lowest spans whatever their sign; every frame whose time lies in
  // (start, end] of one of them (once per span), the first 2 * topk kept.
  std::vector<std::int64_t> asr;
  if (!asr_diffs.empty()) {
    const std::vector<double> a = total(asr_diffs);
    const std::vector<std::size_t> order = stable_argsort(a);
    const std::size_t num = std::min(static_cast<std::size_t>(topk), a.size());
    std::vector<std::pair<double, double>> spans;
    for (std::size_t k = 0; k < num; ++k) {
      if (order[k] >= asr_segments_seconds.size()) {
        throw InputError("asr_segments_seconds: ASR span " + std::to_string(order[k]) +
                         " was selected but only " + std::to_string(asr_segments_seconds.size()) +
                         " spans were given");
      }
      spans.push_back(asr_segments_seconds[order[k]]);
    }
    const double interval = 1.0 / fps;
    for (std::int64_t f = 0; f < max_frames; ++f) {
      const double t = interval * static_cast<double>(f);
      for (const auto& [start, end] : spans) {
        if (t > start && t <= end) asr.push_back(f);
      }
    }
    if (asr.size() > static_cast<std::size_t>(2 * topk))
      asr.resize(static_cast<std::size_t>(2 * topk));
  }
  std::set<std::int64_t> all(visual.begin(), visual.end());
  all.insert(asr.begin(), asr.end());
  // Too many: the visual ones alone (unreachable with topk = 5).
  if (static_cast<double>(all.size()) > static_cast<double>(max_frames) / 2.0) {
    std::sort(visual.begin(), visual.end());
    return visual;
  }
  return {all.begin(), all.end()};
}

Round2Pick round2_gate(const std::string& round2_pred,
                       const std::vector<std::string>& round1_preds) {
  if (round1_preds.empty()) {
    throw InputError("round1_preds: expected the round-1 predictions, found none");
  }
  const std::string no_answer = kNoAnswerFound;
  if (round1_preds.size() == 2) {
    if (round2_pred != no_answer) return Round2Pick::Round2;
    return round1_preds[1] == no_answer ? Round2Pick::Candidate0 : Round2Pick::Candidate1;
  }
  const bool known =
      std::find(round1_preds.begin(), round1_preds.end(), round2_pred) != round1_preds.end();
  return known && round2_pred != no_answer ? Round2Pick::Round2 : Round2Pick::Round1Best;
}

}  // namespace glimpse::methods::feedback
