#include "methods/feedback/cyberv.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/processor.h"
#include "glimpse/text/tokenizer.h"
#include "methods/feedback/answer_parse.h"
#include "methods/feedback/cyberv_score.h"

namespace glimpse::methods::feedback {

namespace {

// CyberV model_transformers.py: think_prompt_list[0], the final-answer prompt, the key-frame text
// and the origin path's round-2 instruction.
constexpr const char* kThink = "Thinking process:\n";
constexpr const char* kFinal =
    "\nNext, I will conclude by stating the final answer using the following format: "
    "\"Therefore, the final answer is: LETTER\" (without quotes), where $LETTER is the final "
    "option of the question. I need to ensure the consistency between the final output answer "
    "and the thinking process. \nTherefore, the final answer is:";
constexpr const char* kKeyFrames = "\nHere are some key frames that may be helpful:";
constexpr const char* kRound2 =
    "You need to pay more attention to key frames and answer the question. Respond with only the "
    "letter of the correct option.";
constexpr std::int64_t kColumns = 36;  // up to the ASR columns, which glimpse leaves empty

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The prompt's first video run split into 32 temporal groups (CyberV process_attention's
// boundaries); invalid when there is no video, it does not split evenly, or no vision start/end
// token surrounds it.
struct Segments {
  std::int64_t start = -1, end = -1, interval = 0;
  bool valid() const { return interval > 0; }
};

Segments video_segments(const model::TokenLayout& layout) {
  Segments s;
  if (!layout.defined()) return s;
  const at::Tensor video =
      layout.modality[0].eq(static_cast<int>(model::Modality::Video)).nonzero().view({-1});
  if (video.numel() == 0) return s;
  const std::int64_t first = video[0].item<std::int64_t>();
  std::int64_t last = first;
  const auto* v = video.data_ptr<std::int64_t>();
  for (std::int64_t i = 1; i < video.numel() && v[i] == last + 1; ++i) last = v[i];
  const std::int64_t n = last - first + 1;
  if (n % kVideoSegments != 0 || first < 1 || last + 1 >= layout.modality.size(1)) return s;
  s.start = first;
  s.end = last;
  s.interval = n / kVideoSegments;
  return s;
}

// One attention row [keys] summed into the columns: text before the vision start, the vision
// start, the 32 segments, the vision end, everything after.
std::vector<double> group_row(const at::Tensor& row, const Segments& s) {
  std::vector<double> out(kColumns, 0.0);
  const at::Tensor r = row.to(at::kDouble).contiguous();
  const auto* p = r.data_ptr<double>();
  for (std::int64_t k = 0; k < r.numel(); ++k) {
    std::int64_t c = 35;
    if (k < s.start - 1) {
      c = 0;
    } else if (k == s.start - 1) {
      c = 1;
    } else if (k <= s.end) {
      c = kVideoFirstCol + (k - s.start) / s.interval;
    } else if (k == s.end + 1) {
      c = 34;
    }
    out[static_cast<std::size_t>(c)] += p[k];
  }
  return out;
}

// What one candidate's steps recorded: tokens, the probability of each under the raw logits, the
// grouped attention row that emitted it, and where its answer stage starts.
struct Trace {
  std::vector<std::int64_t> tokens;
  std::vector<double> probs;
  std::vector<std::vector<double>> rows;
  std::size_t answer_from = 0;
};

// Runs `session` (forks of one prompt, all at the same point) with `config`, appending each
// sequence's steps to traces[offset + b]; returns the decoded tokens. With `flush` the last
// tokens join the cache, so that a later append follows them.
std::int64_t decode_traced(generate::Session& session, const generate::GenerationConfig& config,
                           std::vector<std::uint64_t> seeds, const text::Tokenizer& tokenizer,
                           const CyberVSensor& sensor, const Segments& segments,
                           std::vector<Trace>& traces, std::size_t offset, bool flush = false) {
  generate::GenerateOptions options;
  options.tokenizer = &tokenizer;
  options.seeds = std::move(seeds);
  options.on_step = [&](const generate::StepInfo& step) {
    const at::Tensor probs = at::softmax(step.logits->to(at::kFloat), -1);
    const at::Tensor chosen = probs.gather(1, step.tokens->view({-1, 1})).view({-1});
    for (std::int64_t b = 0; b < step.tokens->size(0); ++b) {
      Trace& t = traces[offset + static_cast<std::size_t>(b)];
      t.tokens.push_back((*step.tokens)[b].item<std::int64_t>());
      t.probs.push_back(chosen[b].item<double>());
      t.rows.push_back(segments.valid() && sensor.latest().defined()
                           ? group_row(sensor.latest()[b], segments)
                           : std::vector<double>());
    }
    return true;
  };
  generate::Generator gen(session, config, options);
  const auto result = gen.run();
  if (flush) gen.flush();
  std::int64_t tokens = 0;
  for (std::int64_t b = 0; b < result.new_tokens.size(0); ++b) {
    Trace& t = traces[offset + static_cast<std::size_t>(b)];
    const std::size_t keep = t.tokens.size() - static_cast<std::size_t>(result.new_tokens.size(1)) +
                             static_cast<std::size_t>(result.lengths[b]);
    t.tokens.resize(keep);  // the padding after a sequence's eos is not its output
    t.probs.resize(keep);
    t.rows.resize(keep);
    tokens += result.lengths[b];
  }
  return tokens;
}

std::string decoded(const text::Tokenizer& tokenizer, const std::vector<std::int64_t>& ids) {
  text::DecodeOptions d;
  d.skip_special_tokens = true;
  return tokenizer.decode(ids, d);
}

bool is_letter(const std::string& pred, const std::vector<std::string>& letters) {
  return std::find(letters.begin(), letters.end(), pred) != letters.end();
}

nlohmann::json optional_number(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

void CyberVSensor::bind(const pipeline::MethodContext& context) {
  layer_ = context.num_layers() - 1;
}

std::optional<model::ProbeRequest> CyberVSensor::probe(const model::ProbeSite& site) {
  if (site.layer != layer_ || site.stage != model::ProbeStage::Attention) return std::nullopt;
  model::ProbeRequest r;  // the newest row, all heads summed (CyberV custom_forward's q_last row)
  r.over_heads = model::ProbeReduce::Sum;
  return r;
}

void CyberVSensor::on_attention_probe(const model::AttentionProbe& probe) {
  latest_ = probe.probs.select(1, 0).select(1, 0);  // [B, keys]
}

CyberV::CyberV(Options options) : options_(std::move(options)) {}
CyberV::~CyberV() = default;

std::unique_ptr<pipeline::Controller> CyberV::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "candidates" && key != "theta" && key != "temperature" &&
        key != "top_p" && key != "top_k" && key != "max_thinking_tokens" && key != "letters" &&
        key != "force_letter" && key != "seed") {
      params.fail(key,
                  "unknown cyberv parameter (expected candidates, theta, temperature, top_p, "
                  "top_k, max_thinking_tokens, letters, force_letter, seed)");
    }
  }
  // Defaults of CyberV scripts/videommmu (n 8, theta 0.3, CoT sampling T 1.0, top_p 0.5,
  // top_k 5, max_thinking_tokens 4096).
  Options o;
  o.candidates = params.get_int("candidates", o.candidates);
  if (o.candidates < 1 || o.candidates > 256)
    params.fail("candidates", "expected a count in [1, 256]");
  o.theta = params.get_float("theta", o.theta);
  if (!(o.theta >= 0 && o.theta <= 1)) params.fail("theta", "expected a value in [0, 1]");
  o.sampling.read(params);
  o.max_thinking_tokens = params.get_int("max_thinking_tokens", o.max_thinking_tokens);
  if (o.max_thinking_tokens < 1) params.fail("max_thinking_tokens", "expected a count >= 1");
  o.letters = read_letters(params, o.letters);
  o.force_letter = params.get_bool("force_letter", false);
  return std::make_unique<CyberV>(std::move(o));
}

void CyberV::attach(pipeline::Pipeline& pipeline) {
  pipeline.attach(sensor_);
}

void CyberV::bind(const pipeline::MethodContext& context) {
  if (!context.has_processor())
    throw ConfigError("cyberv: needs the checkpoint's processor (tokenizer, key-frame images)");
  context_ = context;
}

pipeline::ControllerResult CyberV::run(const pipeline::ControllerRequest& request) {
  if (!context_) throw Error("cyberv: bind the pipeline to the model first");
  if (request.session == nullptr || request.session->batch() != 1)
    throw InputError("cyberv: expected a prefilled session of one prompt");
  generate::Session& prompt = *request.session;
  const auto& tokenizer = context_->processor().tokenizer();
  const std::int64_t n = options_.candidates;
  rounds_.clear();
  const Segments segments = video_segments(prompt.layout());
  if (request.request == nullptr || request.request->videos.size() != 1 ||
      request.request->videos[0].frames.empty()) {
    throw InputError("cyberv: expected a request with one video given as frames (--video)");
  }
  const model::VideoInput& video = request.request->videos[0];

  // Answers start with a letter token when force_letter is on.
  generate::GenerationConfig answer = request.config;
  std::vector<std::int64_t> letter_ids;
  for (const auto& l : options_.letters) {
    for (const std::string& text : {l, " " + l}) {
      const auto ids = tokenizer.encode_ids(text);
      if (!ids.empty()) letter_ids.push_back(ids[0]);
    }
  }
  if (options_.force_letter) {
    answer.begin_suppress_tokens.clear();
    for (std::int64_t id = 0; id < context_->vocab_size(); ++id) {
      if (std::find(letter_ids.begin(), letter_ids.end(), id) == letter_ids.end())
        answer.begin_suppress_tokens.push_back(id);
    }
  }
  generate::GenerationConfig think = options_.sampling.applied(request.config);
  think.max_new_tokens = options_.max_thinking_tokens;

  // Round 1: origin alone, the CoT candidates in one batch, all forks of the prompt. Each fork's
  // first token comes from the prompt's last row.
  const at::Tensor prompt_row = sensor_.latest();
  std::vector<Trace> traces(static_cast<std::size_t>(n));
  std::vector<generate::Session> forks = prompt.fork(n);
  std::int64_t decoded_tokens = 0, appends = 0;
  auto t0 = Clock::now();
  {
    generate::Session origin = std::move(forks[0]);
    sensor_.set_latest(prompt_row);
    decoded_tokens += decode_traced(origin, answer, {}, tokenizer, sensor_, segments, traces, 0);
  }
  const double origin_ms = ms_since(t0);
  t0 = Clock::now();
  if (n > 1) {
    std::vector<generate::Session> cot(std::make_move_iterator(forks.begin() + 1),
                                       std::make_move_iterator(forks.end()));
    generate::Session batch = generate::Session::stack(std::move(cot));
    std::vector<std::uint64_t> seeds;
    for (std::int64_t i = 1; i < n; ++i)
      seeds.push_back(think.seed + static_cast<std::uint64_t>(i));
    batch.append(tokenizer.encode_ids(kThink));
    decoded_tokens += decode_traced(batch, think, seeds, tokenizer, sensor_, segments, traces, 1,
                                    /*flush=*/true);
    for (std::size_t i = 1; i < traces.size(); ++i) traces[i].answer_from = traces[i].tokens.size();
    batch.append(tokenizer.encode_ids(kFinal));
    appends += 2;
    decoded_tokens += decode_traced(batch, answer, {}, tokenizer, sensor_, segments, traces, 1);
  }
  const double cot_ms = ms_since(t0);

  // Sensor readings and Score Forest.
  std::vector<CandidateSignals> signals;
  std::vector<std::string> preds, texts;
  for (std::size_t i = 0; i < traces.size(); ++i) {
    const Trace& t = traces[i];
    const std::vector<std::int64_t> answer_ids(t.tokens.begin() + t.answer_from, t.tokens.end());
    const std::string whole = decoded(tokenizer, t.tokens);
    std::string pred = parse_choice(decoded(tokenizer, answer_ids), options_.letters);
    if (i > 0 && !is_letter(pred, options_.letters)) pred = parse_choice(whole, options_.letters);
    CandidateSignals c;
    c.pred = pred;
    c.repetition = detect_repetition(whole);
    if (is_letter(pred, options_.letters)) {
      // CyberV cal_answer_prob: the last answer-stage step that emitted the letter's first token,
      // else that of " " + letter.
      std::optional<std::size_t> step;
      for (const std::string& text : {pred, " " + pred}) {
        const auto ids = tokenizer.encode_ids(text);
        for (std::size_t k = t.answer_from; !ids.empty() && k < t.tokens.size(); ++k) {
          if (t.tokens[k] == ids[0]) step = k;
        }
        if (step) break;
      }
      if (step) {
        c.prob = t.probs[*step];
        if (!t.rows[*step].empty()) {
          // Row 0: the answer step; row 1: the mean of the other steps. Heads are summed by the
          // probe; dividing by their count gives Score Forest's mean over heads.
          const double heads = static_cast<double>(context_->shape().num_heads);
          AttentionGroups g;
          g.heads = 1;
          g.cols = kColumns;
          g.values.assign(2 * kColumns, 0.0);
          std::int64_t others = 0;
          for (std::size_t k = 0; k < t.rows.size(); ++k) {
            if (k == *step || t.rows[k].empty()) continue;
            ++others;
            for (std::int64_t col = 0; col < kColumns; ++col)
              g.values[kColumns + col] += t.rows[k][col];
          }
          for (std::int64_t col = 0; col < kColumns; ++col) {
            g.values[col] = t.rows[*step][col] / heads;
            if (others > 0) g.values[kColumns + col] /= heads * static_cast<double>(others);
          }
          c.attn = std::move(g);
        }
      }
    }
    preds.push_back(pred);
    texts.push_back(whole);
    signals.push_back(std::move(c));
  }
  const ScoreForestResult forest = score_forest(signals, options_.theta);
  std::vector<std::int64_t> frames;
  const auto frame_count = static_cast<std::int64_t>(video.frames.size());
  if (!forest.stop && signals[0].attn && (frame_count == 64 || frame_count == 32))
    frames = key_frames(signals, frame_count, video.fps, {});

  nlohmann::json round1 = {{"prefills", prompt.stats().prefills},
                           {"official_prefills", 2 * n - 1},
                           {"appends", appends},
                           {"candidates", n},
                           {"decoded_tokens", decoded_tokens},
                           {"answers", preds},
                           {"scores", forest.scores},
                           {"threshold", forest.threshold},
                           {"best", forest.best},
                           {"stop", forest.stop},
                           {"key_frames", frames},
                           {"attention_signal", segments.valid()},
                           {"ms", {{"origin", origin_ms}, {"cot", cot_ms}}}};
  nlohmann::json probs = nlohmann::json::array(), option_scores = nlohmann::json::object();
  for (const auto& c : signals) probs.push_back(optional_number(c.prob));
  for (const auto& [option, score] : forest.option_scores) option_scores[option] = score;
  round1["probs"] = probs;
  round1["option_scores"] = option_scores;

  pipeline::ControllerResult result;
  auto accept = [&](std::int64_t round, std::int64_t candidate,
                    const std::vector<std::int64_t>& ids) {
    result.round = round;
    result.candidate = candidate;
    result.ids = ids;
    result.answer = decoded(tokenizer, ids);
  };
  const auto best = static_cast<std::size_t>(forest.index);
  if (frames.empty()) {
    round1["accepted"] = forest.index;
    rounds_.push_back(round1.dump());
    accept(0, forest.index, traces[best].tokens);
    return result;
  }
  round1["accepted"] = nullptr;
  rounds_.push_back(round1.dump());

  // Round 2: the key frames as images with their timestamps, a second user turn after the
  // prompt's KV (the tower runs on those frames only).
  t0 = Clock::now();
  std::string text = "<|im_start|>user\n" + std::string(kKeyFrames);
  model::ProcessorRequest key;
  key.family = text::ChatFamily::Raw;
  key.limits = request.request->limits;
  for (std::size_t k = 0; k < frames.size(); ++k) {
    text += "\nKey Frame #" + std::to_string(k + 1) + ": Time " +
            frame_timestamp(frames[k], video.fps) + ", <|vision_start|><|image_pad|><|vision_end|>";
    key.images.push_back(video.frames[static_cast<std::size_t>(frames[k])]);
  }
  text += "\n" + std::string(kRound2) + "<|im_end|>\n<|im_start|>assistant\n";
  key.prompt = text;
  const model::ProcessedInputs added = context_->processor().process(key);
  generate::Session second = std::move(prompt.fork(1)[0]);
  second.append(added.inputs);
  std::vector<Trace> trace2(1);
  const std::int64_t tokens2 =
      decode_traced(second, answer, {}, tokenizer, sensor_, Segments{}, trace2, 0);
  const std::string pred2 = parse_choice(decoded(tokenizer, trace2[0].tokens), options_.letters);
  const Round2Pick pick = round2_gate(pred2, preds);
  const char* gate = pick == Round2Pick::Round2       ? "round2"
                     : pick == Round2Pick::Round1Best ? "round1_best"
                     : pick == Round2Pick::Candidate1 ? "candidate1"
                                                      : "candidate0";
  rounds_.push_back(nlohmann::json{
      {"prefills", 0},
      {"official_prefills", 1},
      {"appends", 1},
      {"candidates", 1},
      {"key_frames", frames},
      {"added_tokens", added.inputs.input_ids.size(1)},
      {"decoded_tokens", tokens2},
      {"answer", pred2},
      {"gate", gate},
      {"accepted", pick == Round2Pick::Round2 ? 0 : -1},
      {"ms",
       ms_since(t0)}}.dump());
  switch (pick) {
    case Round2Pick::Round2:
      accept(1, 0, trace2[0].tokens);
      break;
    case Round2Pick::Round1Best:
      accept(0, forest.index, traces[best].tokens);
      break;
    case Round2Pick::Candidate1:
      accept(0, 1, traces[1].tokens);
      break;
    case Round2Pick::Candidate0:
      accept(0, 0, traces[0].tokens);
      break;
  }
  return result;
}

std::string CyberV::report_json() const {
  nlohmann::json j = {{"type", type()},
                      {"candidates", options_.candidates},
                      {"theta", options_.theta},
                      {"max_thinking_tokens", options_.max_thinking_tokens},
                      {"letters", options_.letters},
                      {"force_letter", options_.force_letter},
                      {"rounds", nlohmann::json::array()}};
  options_.sampling.write(j);
  for (const auto& r : rounds_) j["rounds"].push_back(nlohmann::json::parse(r));
  return j.dump();
}

}  // namespace glimpse::methods::feedback
