// The CyberV answer parsers (ports of the dataloaders' parse_multi_choice_response) and the
// last-number reader used for open-answer voting.
#include "methods/feedback/answer_parse.h"

#include <gtest/gtest.h>

#include "glimpse/core/error.h"

namespace glimpse::methods::feedback {
namespace {

const std::vector<std::string> kLetters = {"A", "B", "C", "D"};
const std::vector<std::string> kOptions = {"red", "blue", "green", "yellow"};

TEST(AnswerParse, LetterForms) {
  EXPECT_EQ(parse_choice("(B)", kLetters), "B");
  EXPECT_EQ(parse_choice("The answer is C.", kLetters), "C");  // "." stripped, then "C "
  EXPECT_EQ(parse_choice("A", kLetters), "A");
  EXPECT_EQ(parse_choice("B. blue", kLetters, kOptions), "B");
  EXPECT_EQ(parse_choice("D: yellow", kLetters, kOptions), "D");
  EXPECT_EQ(parse_choice("A.,", kLetters), "A");  // ',' then '.' stripped from the ends
}

TEST(AnswerParse, SeveralCandidatesPickTheLastOccurrence) {
  EXPECT_EQ(parse_choice("C. is wrong, A. is right", kLetters), "A");
  EXPECT_EQ(parse_choice("not (D) but (B)", kLetters), "B");
  // A period match suppresses the "(X)" step altogether.
  EXPECT_EQ(parse_choice("A. wrong, the answer is (C)", kLetters), "A");
  // Colon candidates are ranked with the period pattern when any period matched: "B." is absent
  // (-1), so A wins although B comes later.
  EXPECT_EQ(parse_choice("A. first B: second", kLetters), "A");
}

TEST(AnswerParse, OptionTextNeedsMoreThanFiveWords) {
  EXPECT_EQ(parse_choice("I think the correct choice is the blue one here", kLetters, kOptions),
            "B");
  EXPECT_EQ(parse_choice("not red but green is the answer here", kLetters, kOptions), "C");
  EXPECT_EQ(parse_choice("blue", kLetters, kOptions), kNoAnswerFound);  // one word
  // Without option texts there is no content step.
  EXPECT_EQ(parse_choice("I think the correct choice is the blue one here", kLetters),
            kNoAnswerFound);
  // Case-insensitive, beyond ASCII.
  EXPECT_EQ(
      parse_choice("la saison qui convient est bien ÉTÉ je pense", {"A", "B"}, {"été", "hiver"}),
      "A");
}

TEST(AnswerParse, NothingParsedIsDeterministic) {
  EXPECT_EQ(parse_choice("I don't know", kLetters, kOptions), kNoAnswerFound);
  EXPECT_EQ(parse_choice("I don't know", kLetters, kOptions), kNoAnswerFound);
  EXPECT_EQ(parse_choice("", kLetters), kApiError);
}

TEST(AnswerParse, VideoMmeSearchesEveryPattern) {
  EXPECT_EQ(parse_choice("**B**", kLetters, kOptions), kNoAnswerFound);
  EXPECT_EQ(parse_choice("**B**", kLetters, kOptions, ChoiceParser::VideoMme), "B");
  EXPECT_EQ(parse_choice("{C}", kLetters, {}, ChoiceParser::VideoMme), "C");
  // All groups compete on position: "(C)" comes after "A.".
  EXPECT_EQ(parse_choice("A. wrong, the answer is (C)", kLetters, {}, ChoiceParser::VideoMme), "C");
  EXPECT_EQ(parse_choice("Answer:\nD", kLetters, {}, ChoiceParser::VideoMme), "D");
  EXPECT_EQ(parse_choice("I think the correct choice is the blue one here", kLetters, kOptions,
                         ChoiceParser::VideoMme),
            "B");
  EXPECT_EQ(parse_choice("no idea", kLetters, kOptions, ChoiceParser::VideoMme), kNoAnswerFound);
}

TEST(AnswerParse, WorldSenseFallsBackToTheSeededChoice) {
  // random.seed(42); random.choice(letters).
  EXPECT_EQ(parse_choice("no idea", kLetters, {}, ChoiceParser::WorldSense), "A");
  EXPECT_EQ(parse_choice("no idea", letters_upto('C'), {}, ChoiceParser::WorldSense), "C");
  EXPECT_EQ(parse_choice("no idea", letters_upto('F'), {}, ChoiceParser::WorldSense), "F");
  // No option-text step.
  EXPECT_EQ(parse_choice("I think the correct choice is the blue one here", kLetters, kOptions,
                         ChoiceParser::WorldSense),
            "A");
  EXPECT_EQ(parse_choice("**B**", kLetters, {}, ChoiceParser::WorldSense), "B");
  EXPECT_EQ(parse_choice("", kLetters, {}, ChoiceParser::WorldSense), kApiError);
}

TEST(AnswerParse, RejectsBadArguments) {
  EXPECT_THROW(parse_choice("A", {}), InputError);
  EXPECT_THROW(parse_choice("A", {"A", ""}), InputError);
  EXPECT_THROW(parse_choice("A", kLetters, {"red"}), InputError);
  EXPECT_THROW(letters_upto('a'), InputError);
}

TEST(AnswerParse, LettersUpto) {
  EXPECT_EQ(letters_upto('D'), kLetters);
  EXPECT_EQ(letters_upto('A'), std::vector<std::string>{"A"});
}

TEST(AnswerParse, LastNumberNormalised) {
  EXPECT_EQ(parse_number("The answer is 42."), "42");
  EXPECT_EQ(parse_number("about 1,234 apples"), "1234");
  EXPECT_EQ(parse_number("first 2.50, finally 3.0"), "3");
  EXPECT_EQ(parse_number("3.50"), "3.5");
  EXPECT_EQ(parse_number("x = -7"), "-7");
  EXPECT_EQ(parse_number("3-4"), "4");
  EXPECT_EQ(parse_number("roughly .5"), "0.5");
  EXPECT_EQ(parse_number("agent 007"), "7");
  EXPECT_EQ(parse_number("-0.0"), "0");
  EXPECT_EQ(parse_number("1, 2, 3"), "3");
  EXPECT_EQ(parse_number("no digits here"), "");
}

}  // namespace
}  // namespace glimpse::methods::feedback
