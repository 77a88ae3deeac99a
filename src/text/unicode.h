#pragma once

// UTF-8 and Unicode helpers for the tokenizer runtime. Text that reaches these functions has been
// validated as UTF-8 (see require_utf8), so decoding never checks again.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace glimpse::text::detail {

// Throws InputError naming `what` and the byte offset when `s` is not well-formed UTF-8.
void require_utf8(std::string_view s, const char* what);

// Length of the UTF-8 sequence that starts with `lead` (1 for stray continuation bytes).
inline std::size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point at s[i] (valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, std::size_t& i);
void append_utf8(std::string& out, char32_t cp);

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_whitespace(char32_t cp);
// General category P* (Rust's is_ascii_punctuation || is_punctuation as tokenizers uses it).
bool is_punctuation(char32_t cp);
// A regex \w character as the Rust regex crate defines it (Alphabetic, M, Nd, Pc, Join_Control);
// approximated with general categories.
bool is_word_char(char32_t cp);
// Nonspacing marks (Mn), which StripAccents removes.
bool is_nonspacing_mark(char32_t cp);
// Cc and Cf, for BertNormalizer's clean_text.
bool is_control(char32_t cp);
// CJK ideographs as BERT's _is_chinese_char lists them.
bool is_cjk_ideograph(char32_t cp);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string unicode_normalize(std::string_view s, NormalForm form);
void unicode_normalize_in_place(std::string& s, NormalForm form);
// utf8proc on the whole text, without glimpse's fast paths (for tests).
std::string unicode_normalize_reference(std::string_view s, NormalForm form);
// Per-character full lowercase mapping, as Rust's char::to_lowercase.
std::string to_lower(std::string_view s);

// String::from_utf8_lossy: each maximal ill-formed subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Appends the replacement character U+FFFD.
inline void append_replacement(std::string& out) {
  out += "\xEF\xBF\xBD";
}

}  // namespace glimpse::text::detail
