#pragma once

// GPT-2's reversible byte <-> printable character map (tokenizers/src/pre_tokenizers/
// byte_level.rs: bytes_char), used by the ByteLevel pre-tokenizer and decoder.

#include <array>
#include <string>
#include <string_view>

namespace glimpse::text::detail {

// The UTF-8 encoding of the character that stands for each byte.
const std::array<std::string, 256>& byte_chars();

// The byte a character stands for, or -1.
int char_byte(char32_t cp);

// Maps every byte of `text` to its character.
std::string bytes_to_chars(std::string_view text);

// GPT-2's pre-tokenization regex, as the ByteLevel pre-tokenizer uses it.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace glimpse::text::detail
