#include "methods/feedback/answer_parse.h"

#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "glimpse/core/error.h"
#include "text/unicode.h"

namespace glimpse::methods::feedback {
namespace {

bool contains(const std::string& s, const std::string& pattern) {
  return s.find(pattern) != std::string::npos;
}

// Python's str.rfind: -1 when absent. Byte offsets order matches the same way as Python's
// code-point offsets, which is all argmax needs.
std::int64_t rfind(const std::string& s, const std::string& pattern) {
  const std::size_t at = s.rfind(pattern);
  return at == std::string::npos ? -1 : static_cast<std::int64_t>(at);
}

// Python's str.strip(ch) for one character.
std::string strip_char(const std::string& s, char ch) {
  std::size_t begin = 0, end = s.size();
  while (begin < end && s[begin] == ch) ++begin;
  while (end > begin && s[end - 1] == ch) --end;
  return s.substr(begin, end - begin);
}

// Python's str.isspace: Unicode White_Space plus the separators U+001C..U+001F.
bool py_space(char32_t cp) {
  return text::detail::is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F);
}

// len(response.split()).
std::size_t count_words(const std::string& s) {
  std::size_t words = 0, i = 0;
  bool in_word = false;
  while (i < s.size()) {
    const bool space = py_space(text::detail::next_code_point(s, i));
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

// First index of the maximum, as np.argmax.
std::size_t argmax(const std::vector<std::int64_t>& v) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

// Step 1 of every copy: strip these characters from both ends, one after the other, then pad with
// spaces "to avoid partial match".
std::string clean_response(const std::string& response) {
  std::string r = response;
  for (const char ch : {',', '.', '!', '?', ';', ':', '\''}) r = strip_char(r, ch);
  return " " + r + " ";
}

// Step 5: option texts found in the lower-cased response (only with more than 5 words).
std::vector<std::string> content_candidates(const std::string& response,
                                            const std::vector<std::string>& letters,
                                            const std::vector<std::string>& option_texts) {
  std::vector<std::string> out;
  if (count_words(response) <= 5) return out;
  const std::string lower = text::detail::to_lower(response);
  for (std::size_t i = 0; i < option_texts.size(); ++i) {
    if (contains(lower, text::detail::to_lower(option_texts[i]))) out.push_back(letters[i]);
  }
  return out;
}

// Step 7 for content candidates: the option text that occurs last.
std::string last_content(const std::string& response, const std::vector<std::string>& candidates,
                         const std::vector<std::string>& letters,
                         const std::vector<std::string>& option_texts) {
  const std::string lower = text::detail::to_lower(response);
  std::vector<std::int64_t> starts;
  for (const std::string& can : candidates) {
    std::size_t k = 0;
    while (letters[k] != can) ++k;
    starts.push_back(rfind(lower, text::detail::to_lower(option_texts[k])));
  }
  return candidates[argmax(starts)];
}

// CyberV dataloader/videommmu.py:parse_multi_choice_response (MMMU eval_utils.py).
std::string parse_mmmu(const std::string& raw, const std::vector<std::string>& letters,
                       const std::vector<std::string>& option_texts) {
  const std::string response = clean_response(raw);
  bool index_ans = true, with_brack = false, with_period = false, with_colon = false;
  std::vector<std::string> candidates;
  // Step 2 and 2.1: "A." then "A:"; both lists are kept (a letter may appear twice).
  for (const std::string& c : letters) {
    if (contains(response, c + ".")) {
      candidates.push_back(c);
      with_period = true;
    }
  }
  for (const std::string& c : letters) {
    if (contains(response, c + ":")) {
      candidates.push_back(c);
      with_colon = true;
    }
  }
  // Step 3: "(A)".
  if (candidates.empty()) {
    for (const std::string& c : letters) {
      if (contains(response, "(" + c + ")")) {
        candidates.push_back(c);
        with_brack = true;
      }
    }
  }
  // Step 4: "A ".
  if (candidates.empty()) {
    for (const std::string& c : letters) {
      if (contains(response, c + " ")) candidates.push_back(c);
    }
  }
  // Step 5: option text.
  if (candidates.empty()) {
    candidates = content_candidates(response, letters, option_texts);
    if (!candidates.empty()) index_ans = false;
  }
  // Step 6: no random choice here, unlike MMMU's original.
  if (candidates.empty()) return kNoAnswerFound;
  if (candidates.size() == 1) return candidates[0];
  // Step 7: the candidate whose pattern (chosen by the first matched step) occurs last; a colon
  // candidate scored with the period pattern reads -1.
  if (!index_ans) return last_content(response, candidates, letters, option_texts);
  std::vector<std::int64_t> starts;
  for (const std::string& can : candidates) {
    if (with_period) {
      starts.push_back(rfind(response, can + "."));
    } else if (with_colon) {
      starts.push_back(rfind(response, can + ":"));
    } else if (with_brack) {
      starts.push_back(rfind(response, "(" + can + ")"));
    } else {
      starts.push_back(rfind(response, " " + can + " "));
    }
  }
  return candidates[argmax(starts)];
}

// random.seed(42); random.choice(seq) picks seq[kSeededChoice[len(seq) - 1]] (CPython >= 3.2,
// _randbelow_with_getrandbits; computed with CPython 3.11).
constexpr std::array<std::size_t, 26> kSeededChoice = {
    0, 0, 2, 0, 0, 5, 5, 1, 1, 1, 10, 10, 10, 10, 10, 3, 3, 3, 3, 3, 20, 20, 20, 20, 20, 20};

// CyberV dataloader/videomme.py and worldsense.py:parse_multi_choice_response.
std::string parse_extended(const std::string& raw, const std::vector<std::string>& letters,
                           const std::vector<std::string>& option_texts, bool worldsense) {
  const std::string response = clean_response(raw);
  // Each group is searched over all letters before the next; candidates are the patterns.
  const std::array<std::pair<const char*, const char*>, 13> patterns = {{{"", "."},
                                                                         {"", ":"},
                                                                         {"(", ")"},
                                                                         {"", " "},
                                                                         {"\n", "\n"},
                                                                         {" ", "\n"},
                                                                         {"\n", " "},
                                                                         {": ", ""},
                                                                         {":", ""},
                                                                         {":\n", ""},
                                                                         {"\n\n", ""},
                                                                         {"**", "**"},
                                                                         {"{", "}"}}};
  std::vector<std::string> candidates;
  for (const auto& [before, after] : patterns) {
    for (const std::string& c : letters) {
      const std::string pattern = before + c + after;
      if (contains(response, pattern)) candidates.push_back(pattern);
    }
  }
  bool index_ans = true;
  if (candidates.empty() && !worldsense) {
    candidates = content_candidates(response, letters, option_texts);
    if (!candidates.empty()) index_ans = false;
  }
  std::string pred = kNoAnswerFound;
  if (!candidates.empty()) {
    if (candidates.size() == 1) {
      pred = candidates[0];
    } else if (index_ans) {
      std::vector<std::int64_t> starts;
      for (const std::string& can : candidates) starts.push_back(rfind(response, can));
      pred = candidates[argmax(starts)];
    } else {
      pred = last_content(response, candidates, letters, option_texts);
    }
    // Map the pattern back to the first letter it contains.
    for (const std::string& c : letters) {
      if (contains(pred, c)) {
        pred = c;
        break;
      }
    }
  }
  if (worldsense) {
    for (const std::string& c : letters) {
      if (pred == c) return pred;
    }
    if (letters.size() > kSeededChoice.size()) {
      throw InputError(
          "letters: the WorldSense parser's seeded fallback covers at most 26 "
          "letters, found " +
          std::to_string(letters.size()));
    }
    return letters[kSeededChoice[letters.size() - 1]];
  }
  return pred;
}

}  // namespace

std::string parse_choice(const std::string& response, const std::vector<std::string>& letters,
                         const std::vector<std::string>& option_texts, ChoiceParser parser) {
  if (letters.empty()) throw InputError("letters: expected at least one option letter");
  for (const std::string& c : letters) {
    if (c.empty()) throw InputError("letters: an option letter is empty");
  }
  if (!option_texts.empty() && option_texts.size() != letters.size()) {
    throw InputError("option_texts: expected one text per letter (" +
                     std::to_string(letters.size()) + "), found " +
                     std::to_string(option_texts.size()));
  }
  if (response.empty() || response == kApiError) return kApiError;
  switch (parser) {
    case ChoiceParser::Mmmu:
      return parse_mmmu(response, letters, option_texts);
    case ChoiceParser::VideoMme:
      return parse_extended(response, letters, option_texts, /*worldsense=*/false);
    case ChoiceParser::WorldSense:
      return parse_extended(response, letters, option_texts, /*worldsense=*/true);
  }
  throw InputError("parser: unknown ChoiceParser value");
}

std::vector<std::string> letters_upto(char last) {
  if (last < 'A' || last > 'Z') {
    throw InputError(std::string("last: expected a letter in A..Z, found '") + last + "'");
  }
  std::vector<std::string> out;
  for (char c = 'A'; c <= last; ++c) out.emplace_back(1, c);
  return out;
}

std::string parse_number(const std::string& response) {
  const auto digit = [&](std::size_t i) {
    return i < response.size() && std::isdigit(static_cast<unsigned char>(response[i])) != 0;
  };
  std::string last;
  std::size_t i = 0;
  while (i < response.size()) {
    // A number starts at a digit or at ".d"; a '-' before it is a sign unless a letter or digit
    // precedes the '-' ("3-4" is 3 and 4, "x-1" is 1).
    const bool starts = digit(i) || (response[i] == '.' && digit(i + 1));
    if (!starts) {
      ++i;
      continue;
    }
    const bool negative = i > 0 && response[i - 1] == '-' &&
                          (i < 2 || std::isalnum(static_cast<unsigned char>(response[i - 2])) == 0);
    std::string whole, fraction;
    while (digit(i)) whole += response[i++];
    // Thousands groups: ",ddd" not followed by another digit, after one to three digits.
    if (!whole.empty() && whole.size() <= 3) {
      while (i < response.size() && response[i] == ',' && digit(i + 1) && digit(i + 2) &&
             digit(i + 3) && !digit(i + 4)) {
        whole += response.substr(i + 1, 3);
        i += 4;
      }
    }
    if (i < response.size() && response[i] == '.' && digit(i + 1)) {
      ++i;
      while (digit(i)) fraction += response[i++];
    }
    while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
    std::size_t lead = 0;
    while (lead + 1 < whole.size() && whole[lead] == '0') ++lead;
    whole = whole.empty() ? "0" : whole.substr(lead);
    std::string value = fraction.empty() ? whole : whole + "." + fraction;
    if (negative && value != "0") value = "-" + value;
    last = value;
  }
  return last;
}

}  // namespace glimpse::methods::feedback
