#pragma once

// Helpers shared by the tokenizer tests.

#include <gtest/gtest.h>

namespace glimpse::text::test_util {

// The sentencepiece plug-in is loaded with RTLD_DEEPBIND, which AddressSanitizer forbids; glimpse
// then throws UnsupportedError, and these tests skip.
constexpr bool sanitizer_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

}  // namespace glimpse::text::test_util

#define GLIMPSE_REQUIRE_SENTENCEPIECE()                                                    \
  do {                                                                                     \
    if (::glimpse::text::test_util::sanitizer_build()) {                                   \
      GTEST_SKIP() << "sentencepiece needs RTLD_DEEPBIND, which AddressSanitizer forbids"; \
    }                                                                                      \
  } while (0)
