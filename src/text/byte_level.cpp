#include "text/byte_level.h"

#include "text/unicode.h"

namespace glimpse::text::detail {
namespace {

struct Tables {
  std::array<std::string, 256> chars;
  std::array<int, 0x144> bytes{};  // the mapped characters are all below U+0144
  Tables() {
    bytes.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(chars[b], cp);
      bytes[cp] = b;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_chars() {
  return tables().chars;
}

int char_byte(char32_t cp) {
  return cp < 0x144 ? tables().bytes[cp] : -1;
}

std::string bytes_to_chars(std::string_view text) {
  const auto& chars = tables().chars;
  // Every mapped character takes one or two UTF-8 bytes: size first, then write in place.
  std::size_t n = 0;
  for (const char c : text) n += chars[static_cast<unsigned char>(c)].size();
  std::string out(n, '\0');
  char* w = out.data();
  for (const char c : text) {
    const std::string& s = chars[static_cast<unsigned char>(c)];
    w[0] = s[0];
    if (s.size() == 2) w[1] = s[1];
    w += s.size();
  }
  return out;
}

}  // namespace glimpse::text::detail
