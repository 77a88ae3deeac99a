#pragma once

// Self-consistency (Wang et al., 2023; the majority voting of InternVL2.5's test-time scaling) as
// a controller: N candidates from one prefill, the answer extracted from each, the most frequent
// answer accepted. Candidate 0 decodes with the run's settings (greedy by default), so N = 1 is
// the plain run; the others sample. Ties go to the answer a lower candidate gave first (CyberV
// utils.py:majority_sampling breaks them with random.choice; glimpse is reproducible instead).
// Candidates whose answer does not parse do not vote; when none parses, candidate 0 is accepted.
//
//   {"type": "self_consistency", "candidates": 5, "temperature": 0.7, "top_p": 1.0, "top_k": 50,
//    "answer": "choice" | "number" | "text", "letters": ["A", ..., "J"], "seed": 0}
//
// "choice" parses a multiple-choice letter as MMMU's parse_multi_choice_response (the parser
// CyberV uses), "number" the last number of the text, "text" compares the whole answer
// (whitespace collapsed, case and a final period ignored).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/pipeline/controller.h"
#include "glimpse/pipeline/method_context.h"
#include "methods/feedback/candidates.h"

namespace glimpse::methods::feedback {

enum class AnswerKind : std::int8_t { Choice, Number, Text };

// The answer `kind` extracts from `text` ("" when none parses).
std::string extract_answer(const std::string& text, AnswerKind kind,
                           const std::vector<std::string>& letters);

// The winning answer of `answers` ("" does not vote) and the first candidate that gave it; ties
// go to the answer seen first. {"", 0} when nothing voted.
std::pair<std::string, std::int64_t> majority_vote(const std::vector<std::string>& answers);

class SelfConsistency : public pipeline::Controller {
 public:
  struct Options {
    std::int64_t candidates = 5;
    Sampling sampling{0.7, 1.0, 50, std::nullopt};
    AnswerKind answer = AnswerKind::Choice;
    std::vector<std::string> letters;  // empty: A..J
  };
  explicit SelfConsistency(Options options);
  static std::unique_ptr<pipeline::Controller> create(const core::Config& params);

  std::string type() const override { return "self_consistency"; }
  void bind(const pipeline::MethodContext& context) override;
  pipeline::ControllerResult run(const pipeline::ControllerRequest& request) override;
  std::string report_json() const override;

 private:
  Options options_;
  std::optional<pipeline::MethodContext> context_;
  std::string round_json_;  // the last run's round, JSON
};

}  // namespace glimpse::methods::feedback
