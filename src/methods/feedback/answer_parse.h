#pragma once

// Answer extraction for the feedback-loop controllers (spec feedback_loops.md §1(b) Step 1): the
// multiple-choice parser CyberV runs on every candidate (dataloader/*.py:process_out_list, which
// calls that dataloader's copy of the MMMU eval_utils.py:parse_multi_choice_response), and a
// plain last-number reader for open numeric answers in self-consistency voting.

#include <string>
#include <vector>

namespace glimpse::methods::feedback {

// What the parser returns when no option is found, and for an empty response.
inline constexpr const char* kNoAnswerFound = "No Answer Found";
inline constexpr const char* kApiError = "API Error";

// CyberV ships three copies of parse_multi_choice_response that differ (commit bbaa1ed).
enum class ChoiceParser {
  // dataloader/videommmu.py (the MMMU eval utils copy): "A." and "A:", else "(A)", else "A ",
  // else option text; ties broken by the last occurrence. The default.
  Mmmu,
  // dataloader/videomme.py: every pattern group is searched ("A.", "A:", "(A)", "A ", "\nA\n",
  // " A\n", "\nA ", ": A", ":A", ":\nA", "\n\nA", "**A**", "{A}"), else option text; the last
  // occurrence of any matched pattern wins and is mapped back to its letter.
  VideoMme,
  // dataloader/worldsense.py: VideoMme without the option-text step; when nothing parses it
  // returns random.choice(letters) right after random.seed(42), a fixed letter for each count of
  // letters (its process_out_list always passes the default A..D, which gives "A").
  WorldSense,
};

// Port of parse_multi_choice_response (CyberV dataloader/videommmu.py, videomme.py or
// worldsense.py, as `parser` picks). `letters` are all_choices ("A", "B", ...); `option_texts`
// are the option contents in the same order (index2ans), empty to skip the content match. Returns
// one of `letters`, kNoAnswerFound when nothing parses (Mmmu, VideoMme) and kApiError for an
// empty response. Python's str.lower is approximated by Unicode simple lowercase (no final-sigma
// rule).
std::string parse_choice(const std::string& response, const std::vector<std::string>& letters,
                         const std::vector<std::string>& option_texts = {},
                         ChoiceParser parser = ChoiceParser::Mmmu);

// "A" .. `last` as one-letter strings (get_multi_choice_info's all_choices); `last` in 'A'..'Z'.
std::vector<std::string> letters_upto(char last);

// The last number in `response`, for voting over open numeric answers: digits with an optional
// fraction (".5" reads as "0.5"), thousands groups "1,234" read whole, a leading '-' counts when
// no letter or digit precedes it. Normalised so that equal values vote together: commas dropped,
// trailing fractional zeros and a bare '.' dropped ("3.50" -> "3.5", "2.0" -> "2"), leading zeros
// of the integer part dropped, "-0" -> "0". "" when the text holds no number. No exponents.
std::string parse_number(const std::string& response);

}  // namespace glimpse::methods::feedback
