// The Unicode helpers behind the normalizers and decoders.
#include "text/unicode.h"

#include <gtest/gtest.h>

#include <random>

#include "core/json_util.h"

namespace glimpse::text::detail {
namespace {

TEST(TextUnicodeTest, NfcFastPathAgreesWithUtf8proc) {
  // Characters around every kind of composition boundary: ASCII and Latin-1 starters, combining
  // marks (ccc != 0), Hangul L/V/T jamo and syllables, kana with voicing marks, Devanagari with
  // nukta and composition exclusions, singletons, Thai, Arabic with madda, emoji.
  const char32_t pool[] = {'a',    'e',    'A',    ' ',    0xE9,   0x301,   0x327,  0x308,
                           0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x304B,  0x3099, 0x309A,
                           0x928,  0x93C,  0x958,  0x915,  0x94D,  0x2126,  0x212B, 0x340,
                           0x387,  0xE2A,  0xE31,  0x627,  0x653,  0x1F600, 0xFE0F, 0x4E16,
                           0x41F,  0x306,  0x5D0,  0x5B4,  0x3000, 0x302A,  0x2000, 0x1E0A};
  std::mt19937 rng(7);
  for (int round = 0; round < 3000; ++round) {
    std::string s;
    const int len = static_cast<int>(rng() % 12);
    for (int k = 0; k < len; ++k) append_utf8(s, pool[rng() % (sizeof(pool) / sizeof(pool[0]))]);
    SCOPED_TRACE(s);
    EXPECT_EQ(unicode_normalize(s, NormalForm::NFC),
              unicode_normalize_reference(s, NormalForm::NFC));
    EXPECT_EQ(unicode_normalize(s, NormalForm::NFKC),
              unicode_normalize_reference(s, NormalForm::NFKC));
  }
}

TEST(TextUnicodeTest, LossyDecodingReplacesMaximalSubparts) {
  EXPECT_EQ(utf8_lossy("a\xE4\xB8"), "a\xEF\xBF\xBD");            // truncated: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // never valid: one each
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (int k = 0; k < 8; ++k) s += static_cast<char>(rng());
    EXPECT_FALSE(core::first_invalid_utf8(utf8_lossy(s)).has_value());
  }
}

TEST(TextUnicodeTest, CaseAndClasses) {
  EXPECT_EQ(to_lower("ÀB\xC4\xB0\xCE\xA3"), "àbi\xCC\x87\xCF\x83");  // İ -> i + dot, Σ -> σ
  EXPECT_TRUE(is_whitespace(0x3000));
  EXPECT_FALSE(is_whitespace(0x200B));  // zero width space is not White_Space
  EXPECT_FALSE(is_whitespace(0x180E));
  EXPECT_TRUE(is_punctuation('$'));
  EXPECT_TRUE(is_punctuation(0x3002));
  EXPECT_TRUE(is_word_char(0x301));
  EXPECT_FALSE(is_word_char('-'));
}

}  // namespace
}  // namespace glimpse::text::detail
