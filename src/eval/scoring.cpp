#include "glimpse/eval/scoring.h"

#include <cctype>
#include <map>
#include <sstream>

namespace glimpse::eval {
namespace {

bool alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

std::string trim(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// "B. red" -> 'B' and "red"; nothing for a malformed option.
std::optional<std::pair<char, std::string>> split_option(const std::string& option) {
  const std::string o = trim(option);
  if (o.size() < 2 || o[0] < 'A' || o[0] > 'Z' || (o[1] != '.' && o[1] != ')' && o[1] != ':'))
    return std::nullopt;
  return std::make_pair(o[0], trim(o.substr(2)));
}

}  // namespace

std::string normalize_answer(const std::string& text) {
  static const std::map<std::string, std::string> numbers = {
      {"zero", "0"}, {"one", "1"},   {"two", "2"},   {"three", "3"}, {"four", "4"}, {"five", "5"},
      {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"}};
  std::string cleaned;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (alnum(c) || c == '-' || u >= 0x80) {
      cleaned += static_cast<char>(std::tolower(u));
    } else {
      cleaned += ' ';
    }
  }
  std::istringstream words(cleaned);
  std::string word, out;
  while (words >> word) {
    if (word == "a" || word == "an" || word == "the") continue;
    const auto n = numbers.find(word);
    out += (out.empty() ? "" : " ") + (n == numbers.end() ? word : n->second);
  }
  return out;
}

std::optional<char> parse_choice(const std::string& prediction,
                                 const std::vector<std::string>& options) {
  std::string letters;
  std::vector<std::string> texts;
  for (const auto& o : options) {
    const auto parts = split_option(o);
    if (!parts) continue;
    letters += parts->first;
    texts.push_back(parts->second);
  }
  const std::string p = trim(prediction);
  auto known = [&](char c) { return letters.find(c) != std::string::npos; };
  // Exactly one option letter standing alone anywhere.
  std::optional<char> found;
  int count = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!known(p[i])) continue;
    const bool left = i == 0 || !alnum(p[i - 1]);
    const bool right = i + 1 == p.size() || !alnum(p[i + 1]);
    if (left && right && (!found || *found != p[i])) {
      found = p[i];
      ++count;
    }
  }
  if (count == 1) return found;
  if (count > 1) return std::nullopt;
  // The text of exactly one option.
  const std::string np = normalize_answer(p);
  std::optional<char> by_text;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (!np.empty() && normalize_answer(texts[i]) == np) {
      if (by_text) return std::nullopt;
      by_text = letters[i];
    }
  }
  return by_text;
}

bool is_correct(const std::string& prediction, const std::string& answer,
                const std::vector<std::string>& options) {
  if (!options.empty()) {
    const auto c = parse_choice(prediction, options);
    const std::string a = trim(answer);
    return c && a.size() == 1 && *c == a[0];
  }
  return normalize_answer(prediction) == normalize_answer(answer);
}

}  // namespace glimpse::eval
