// Self-consistency as a controller: the vote and its tie rule, N = 1 is the plain greedy run,
// the candidates are the runs each would be alone (greedy first, then seeded samples) from one
// prefill, and the pipeline JSON's "controller" key with its errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "feedback_testing.h"
#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "methods/feedback/candidates.h"
#include "methods/feedback/self_consistency.h"
#include "test_util.h"

namespace glimpse::methods::feedback {
namespace {

TEST(SelfConsistency, MajorityVoteTiesGoToTheFirstSeen) {
  EXPECT_EQ(majority_vote({"B", "A", "A", "B"}), std::make_pair(std::string("B"), std::int64_t{0}));
  EXPECT_EQ(majority_vote({"", "C", "A", "A"}), std::make_pair(std::string("A"), std::int64_t{2}));
  EXPECT_EQ(majority_vote({"", ""}), std::make_pair(std::string(), std::int64_t{0}));
  EXPECT_EQ(majority_vote({}), std::make_pair(std::string(), std::int64_t{0}));
}

TEST(SelfConsistency, AnswersAreExtractedByKind) {
  const std::vector<std::string> letters = {"A", "B", "C", "D"};
  EXPECT_EQ(extract_answer("The answer is (C).", AnswerKind::Choice, letters), "C");
  EXPECT_EQ(extract_answer("no idea", AnswerKind::Choice, letters), "");
  EXPECT_EQ(extract_answer("  Two  Red\nCircles. ", AnswerKind::Text, letters), "two red circles");
  EXPECT_EQ(extract_answer("I count 3 apples, so 4 in total", AnswerKind::Number, letters), "4");
}

TEST(SelfConsistency, BadParametersNameTheKey) {
  test::expect_config_errors(
      {{R"({"controller": {"type": "self_consistency", "candidates": 0}})", "'candidates'"},
       {R"({"controller": {"type": "self_consistency", "temperature": 0}})", "'temperature'"},
       {R"({"controller": {"type": "self_consistency", "answer": "vote"}})", "'answer'"},
       {R"({"controller": {"type": "self_consistency", "letters": ["ab"]}})", "'letters'"},
       {R"({"controller": {"type": "self_consistency", "n": 3}})", "'n'"},
       {R"({"controller": {"type": "nope"}})", "'type'"},
       {R"({"controller": [1]})", "'controller'"},
       {R"({"controllers": {}})", "'controllers'"}});
}

struct Tiny {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<model::Processor> processor;
  model::ProcessedInputs processed;
  generate::GenerationConfig config;
};

Tiny& tiny() {
  static Tiny t = [] {
    Tiny t;
    const std::string dir = test::fixtures_dir() + "/tiny-qwen2-vl/model";
    t.model = model::load_model(dir);
    t.processor = model::Processor::load(dir);
    model::ProcessorRequest request;
    request.prompt = "Hello! Please count to five.";
    t.processed = t.processor->process(request);
    t.config.max_new_tokens = 6;
    t.config.eos_token_ids = t.processor->eos_token_ids();
    return t;
  }();
  return t;
}

std::vector<std::int64_t> row_ids(const generate::GenerationResult& r, std::int64_t i) {
  const at::Tensor row = r.new_tokens[i].narrow(0, 0, r.lengths[i]).contiguous();
  return {row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel()};
}

TEST(SelfConsistencyGolden, OneCandidateIsThePlainGreedyRun) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  const auto plain = generate::generate(*t.model, t.processed.inputs, t.config);
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"controller": {"type": "self_consistency", "candidates": 1}})", "test");
  p.bind(pipeline::MethodContext(*t.model, t.processor.get()));
  generate::Session session(*t.model);
  session.prefill(t.processed.inputs);
  pipeline::ControllerRequest request;
  request.session = &session;
  request.config = t.config;
  const auto result = p.controller()->run(request);
  EXPECT_EQ(result.ids, row_ids(plain, 0));
  EXPECT_EQ(result.candidate, 0);
}

TEST(SelfConsistencyGolden, CandidatesAreTheirOwnRunsFromOnePrefill) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  generate::GenerationConfig sampled = t.config;
  sampled.do_sample = true;
  sampled.temperature = 1.5;
  sampled.seed = 11;
  generate::Session session(*t.model);
  session.prefill(t.processed.inputs);
  const CandidateRound round =
      decode_candidates(session, 3, t.config, sampled, t.processor->tokenizer());
  ASSERT_EQ(round.candidates.size(), 3u);
  EXPECT_EQ(round.batches, 2);
  EXPECT_EQ(session.stats().prefills, 1);
  EXPECT_EQ(round.candidates[0].ids,
            row_ids(generate::generate(*t.model, t.processed.inputs, t.config), 0));
  std::int64_t tokens = 0;
  for (std::int64_t i = 1; i < 3; ++i) {
    generate::GenerateOptions alone;
    alone.seeds = {sampled.seed + static_cast<std::uint64_t>(i)};
    const auto own = generate::generate(*t.model, t.processed.inputs, sampled, alone);
    EXPECT_EQ(round.candidates[i].ids, row_ids(own, 0)) << "candidate " << i;
  }
  for (const auto& c : round.candidates) tokens += static_cast<std::int64_t>(c.ids.size());
  EXPECT_EQ(round.decoded_tokens, tokens);
  // The prefix stays usable: a later round forks it again.
  const CandidateRound again =
      decode_candidates(session, 2, t.config, sampled, t.processor->tokenizer());
  EXPECT_EQ(again.candidates[0].ids, round.candidates[0].ids);
  EXPECT_EQ(again.candidates[1].ids, round.candidates[1].ids);
}

TEST(SelfConsistencyGolden, ReportHasTheRound) {
  GLIMPSE_REQUIRE_FIXTURES();
  Tiny& t = tiny();
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"controller": {"type": "self_consistency", "candidates": 4, "answer": "text",
          "seed": 5}})",
      "test");
  p.bind(pipeline::MethodContext(*t.model, t.processor.get()));
  generate::Session session(*t.model);
  session.prefill(t.processed.inputs);
  pipeline::ControllerRequest request;
  request.session = &session;
  request.config = t.config;
  const auto result = p.controller()->run(request);
  const auto report = nlohmann::json::parse(p.report().to_json());
  const auto& c = report.at("controller");
  EXPECT_EQ(c.at("type"), "self_consistency");
  ASSERT_EQ(c.at("rounds").size(), 1u);
  const auto& round = c.at("rounds").at(0);
  EXPECT_EQ(round.at("prefills"), 1);
  EXPECT_EQ(round.at("candidates"), 4);
  EXPECT_EQ(round.at("accepted"), result.candidate);
  const auto answers = round.at("answers").get<std::vector<std::string>>();
  ASSERT_EQ(answers.size(), 4u);
  // The accepted candidate gave the answer with the most votes.
  std::int64_t votes = 0;
  for (const auto& a : answers) votes += a == answers[result.candidate];
  for (const auto& [answer, count] : round.at("votes").items())
    EXPECT_LE(count.get<std::int64_t>(), votes) << answer;
}

}  // namespace
}  // namespace glimpse::methods::feedback
