#pragma once

// Scoring a generated answer as the common MLLM benchmarks do.

#include <optional>
#include <string>
#include <vector>

namespace glimpse::eval {

// VQA-style normalisation (the VQAv2 evaluation script's processPunctuation/processDigitArticle,
// simplified): lower case, punctuation other than '-' dropped, articles removed, number words
// zero..ten as digits, whitespace collapsed.
std::string normalize_answer(const std::string& text);

// The option letter a prediction chooses, as VLMEvalKit's can_infer does: exactly one option
// letter standing alone ("B", "B.", "(B) red", "The answer is B."), else the one option whose
// text the prediction is ("red" for "B. red"). Nothing when none or several ("A or B").
std::optional<char> parse_choice(const std::string& prediction,
                                 const std::vector<std::string>& options);

// Whether `prediction` answers `answer`: by choice for multiple-choice items (non-empty
// `options`), else by normalised exact match.
bool is_correct(const std::string& prediction, const std::string& answer,
                const std::vector<std::string>& options);

}  // namespace glimpse::eval
