#include "text/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "core/json_util.h"
#include "glimpse/core/error.h"

namespace glimpse::text::detail {

void require_utf8(std::string_view s, const char* what) {
  if (const auto bad = core::first_invalid_utf8(s)) {
    throw InputError(std::string(what) + " is not valid UTF-8 (at byte " + std::to_string(*bad) +
                     "); tokenizers take Unicode text");
  }
}

char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t len = utf8_len(c);
  if (len == 1 || i + len > s.size()) {
    ++i;
    return c;
  }
  char32_t cp = c & (0xFF >> (len + 1));
  for (std::size_t k = 1; k < len; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_whitespace(char32_t cp) {
  // PropList.txt White_Space.
  if (cp >= 0x09 && cp <= 0x0D) return true;
  switch (cp) {
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

namespace {

utf8proc_category_t category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

}  // namespace

bool is_punctuation(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
  }
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           cp == '_';
  }
  if (cp == 0x200C || cp == 0x200D) return true;  // Join_Control
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_nonspacing_mark(char32_t cp) {
  return cp >= 0x300 && category(cp) == UTF8PROC_CATEGORY_MN;
}

bool is_control(char32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

namespace {

// Code points that NFC leaves alone wherever they stand: canonical combining class 0, no
// canonical decomposition that NFC keeps apart (singletons, exclusions), and never the second
// half of a canonical composition. Conservative: ranges checked against UnicodeData.txt; any
// other code point sends the text through utf8proc.
bool nfc_stable(char32_t cp) {
  if (cp < 0x300) return true;
  if (cp >= 0x400 && cp <= 0x482) return true;    // Cyrillic letters
  if (cp >= 0x5D0 && cp <= 0x5EA) return true;    // Hebrew letters
  if (cp >= 0x620 && cp <= 0x64A) return true;    // Arabic letters
  if (cp >= 0xE01 && cp <= 0xE30) return true;    // Thai consonants and SARA A
  if (cp >= 0x2002 && cp <= 0x2027) return true;  // General Punctuation (not U+2000/1)
  if (cp >= 0x2030 && cp <= 0x205E) return true;
  if (cp >= 0x3000 && cp <= 0x3029) return true;  // CJK punctuation (not the tone marks)
  if (cp >= 0x3030 && cp <= 0x303F) return true;
  if (cp >= 0x3041 && cp <= 0x3096) return true;    // Hiragana (not the voicing marks)
  if (cp >= 0x30A0 && cp <= 0x30FF) return true;    // Katakana
  if (cp >= 0x3400 && cp <= 0x4DBF) return true;    // CJK Extension A
  if (cp >= 0x4E00 && cp <= 0x9FFF) return true;    // CJK Unified Ideographs
  if (cp >= 0xAC00 && cp <= 0xD7A3) return true;    // Hangul syllables (compose only with jamo)
  if (cp >= 0xFE00 && cp <= 0xFE0F) return true;    // variation selectors
  if (cp >= 0xFF01 && cp <= 0xFFEF) return true;    // half- and fullwidth forms
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return true;  // emoji and pictographs
  return false;
}

}  // namespace

namespace {

std::string utf8proc_normalize(std::string_view s, NormalForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::NFC:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalForm::NFD:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalForm::NFKC:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalForm::NFKD:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                              static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  if (n < 0) {
    throw InputError(std::string("Unicode normalization failed: ") +
                     utf8proc_errmsg(static_cast<utf8proc_ssize_t>(n)));
  }
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

}  // namespace

std::string unicode_normalize_reference(std::string_view s, NormalForm form) {
  return utf8proc_normalize(s, form);
}

std::string unicode_normalize(std::string_view s, NormalForm form) {
  std::string out(s);
  unicode_normalize_in_place(out, form);
  return out;
}

void unicode_normalize_in_place(std::string& s, NormalForm form) {
  if (form != NormalForm::NFC) {
    for (const char c : s) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        s = utf8proc_normalize(s, form);
        return;
      }
    }
    return;  // every normal form leaves ASCII alone
  }
  // NFC works segment by segment: a stable character is a composition boundary, so only each
  // run of other characters, with the stable character before it, goes through utf8proc.
  const std::size_t n = s.size();
  std::string out;
  std::size_t emitted = 0;                      // s[0, emitted) is settled (copied or normalized)
  std::size_t last_stable = std::string::npos;  // start of the latest stable character
  std::size_t i = 0;
  bool changed = false;
  while (i < n) {
    const std::size_t at = i;
    const char32_t cp = next_code_point(s, i);
    if (nfc_stable(cp)) {
      last_stable = at;
      continue;
    }
    const std::size_t begin =
        last_stable != std::string::npos && last_stable >= emitted ? last_stable : at;
    std::size_t end = i;
    while (end < n) {
      std::size_t next = end;
      if (nfc_stable(next_code_point(s, next))) break;
      end = next;
    }
    if (!changed) {
      out.reserve(n + 16);
      changed = true;
    }
    out.append(s, emitted, begin - emitted);
    out += utf8proc_normalize(std::string_view(s).substr(begin, end - begin), form);
    emitted = end;
    last_stable = std::string::npos;
    i = end;
  }
  if (!changed) return;
  out.append(s, emitted, std::string::npos);
  s = std::move(out);
}

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const char32_t cp = next_code_point(s, i);
    if (cp < 0x80) {
      out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    } else if (cp == 0x130) {
      out += "i\xCC\x87";  // the one unconditional multi-character lowercase mapping
    } else {
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
    }
  }
  return out;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      append_replacement(out);
      ++i;
      continue;
    }
    // Count the bytes that still form a valid prefix of a sequence.
    std::size_t k = 1;
    if (i + 1 < n && p[i + 1] >= lo && p[i + 1] <= hi) {
      k = 2;
      while (k < len && i + k < n && (p[i + k] & 0xC0) == 0x80) ++k;
    }
    if (k == len) {
      out.append(bytes.substr(i, len));
    } else {
      append_replacement(out);
    }
    i += k;
  }
  return out;
}

}  // namespace glimpse::text::detail
