#include "methods/feedback/self_consistency.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/processor.h"
#include "methods/feedback/answer_parse.h"
#include "methods/feedback/candidates.h"

namespace glimpse::methods::feedback {

namespace {

const char* kind_name(AnswerKind kind) {
  switch (kind) {
    case AnswerKind::Choice:
      return "choice";
    case AnswerKind::Number:
      return "number";
    case AnswerKind::Text:
      return "text";
  }
  return "?";
}

std::string normalised_text(const std::string& text) {
  std::string out;
  bool space = false;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(std::tolower(c));
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

}  // namespace

std::string extract_answer(const std::string& text, AnswerKind kind,
                           const std::vector<std::string>& letters) {
  switch (kind) {
    case AnswerKind::Choice: {
      // The parser's "No Answer Found" and "API Error" (empty text) do not vote.
      const std::string letter = parse_choice(text, letters);
      return letter == kNoAnswerFound || letter == kApiError ? "" : letter;
    }
    case AnswerKind::Number:
      return parse_number(text);
    case AnswerKind::Text:
      return normalised_text(text);
  }
  return "";
}

std::pair<std::string, std::int64_t> majority_vote(const std::vector<std::string>& answers) {
  std::vector<std::pair<std::string, std::int64_t>> counts;  // in order of first appearance
  for (const auto& a : answers) {
    if (a.empty()) continue;
    auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == a; });
    if (it == counts.end()) {
      counts.emplace_back(a, 1);
    } else {
      ++it->second;
    }
  }
  if (counts.empty()) return {"", 0};
  auto best = counts.begin();
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    if (it->second > best->second) best = it;  // strict: the first seen wins ties
  }
  const auto first = std::find(answers.begin(), answers.end(), best->first);
  return {best->first, static_cast<std::int64_t>(first - answers.begin())};
}

SelfConsistency::SelfConsistency(Options options) : options_(std::move(options)) {
  if (options_.letters.empty()) {
    for (char c = 'A'; c <= 'J'; ++c) options_.letters.emplace_back(1, c);
  }
}

std::unique_ptr<pipeline::Controller> SelfConsistency::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "candidates" && key != "temperature" && key != "top_p" &&
        key != "top_k" && key != "answer" && key != "letters" && key != "seed") {
      params.fail(key,
                  "unknown self_consistency parameter (expected candidates, temperature, top_p, "
                  "top_k, answer, letters, seed)");
    }
  }
  Options o;
  o.candidates = params.get_int("candidates", o.candidates);
  if (o.candidates < 1 || o.candidates > 1024)
    params.fail("candidates", "expected a count in [1, 1024]");
  o.sampling.read(params);
  const std::string answer = params.get_string("answer", "choice");
  if (answer == "choice") {
    o.answer = AnswerKind::Choice;
  } else if (answer == "number") {
    o.answer = AnswerKind::Number;
  } else if (answer == "text") {
    o.answer = AnswerKind::Text;
  } else {
    params.fail("answer", "expected \"choice\", \"number\" or \"text\"");
  }
  o.letters = read_letters(params, {});
  return std::make_unique<SelfConsistency>(std::move(o));
}

void SelfConsistency::bind(const pipeline::MethodContext& context) {
  if (!context.has_processor())
    throw ConfigError("self_consistency: needs the checkpoint's processor (its tokenizer)");
  context_ = context;
}

pipeline::ControllerResult SelfConsistency::run(const pipeline::ControllerRequest& request) {
  if (!context_) throw Error("self_consistency: bind the pipeline to the model first");
  if (request.session == nullptr) throw InputError("self_consistency: no prefilled session");
  const generate::GenerationConfig sampled = options_.sampling.applied(request.config);
  const CandidateRound round =
      decode_candidates(*request.session, options_.candidates, request.config, sampled,
                        context_->processor().tokenizer());
  std::vector<std::string> answers;
  for (const auto& c : round.candidates)
    answers.push_back(extract_answer(c.text, options_.answer, options_.letters));
  const auto [winner, accepted] = majority_vote(answers);
  nlohmann::json votes = nlohmann::json::object();
  for (const auto& a : answers) {
    if (!a.empty()) votes[a] = votes.value(a, 0) + 1;
  }
  round_json_ = nlohmann::json{
      {"prefills", request.session->stats().prefills},
      {"candidates", options_.candidates},
      {"batches", round.batches},
      {"decoded_tokens", round.decoded_tokens},
      {"decode_ms", round.decode_ms},
      {"answers", answers},
      {"votes", votes},
      {"answer", winner},
      {"accepted",
       accepted}}.dump();
  pipeline::ControllerResult result;
  result.ids = round.candidates[accepted].ids;
  result.answer = round.candidates[accepted].text;
  result.candidate = accepted;
  return result;
}

std::string SelfConsistency::report_json() const {
  nlohmann::json j = {{"type", type()},
                      {"candidates", options_.candidates},
                      {"answer", kind_name(options_.answer)},
                      {"letters", options_.letters},
                      {"rounds", nlohmann::json::array()}};
  options_.sampling.write(j);
  if (!round_json_.empty()) j["rounds"].push_back(nlohmann::json::parse(round_json_));
  return j.dump();
}

}  // namespace glimpse::methods::feedback
