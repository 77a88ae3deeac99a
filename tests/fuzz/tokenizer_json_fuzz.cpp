// libFuzzer target: the tokenizer.json loader, then encode and decode. The input is
// "<tokenizer.json bytes>\0<text bytes>"; without a NUL byte the whole input is the text, run
// through a small built-in tokenizer that exercises added tokens, a regex split, byte-level BPE
// and byte fallback. Every input must either work or raise a glimpse::Error; anything else (a
// crash, another exception, a sanitizer report, a hang) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "glimpse/core/error.h"
#include "glimpse/text/incremental_decoder.h"
#include "glimpse/text/tokenizer.h"

namespace {

constexpr const char* kBuiltIn = R"({
  "added_tokens": [
    {"id": 6, "content": "<|s|>", "special": true, "normalized": false},
    {"id": 7, "content": "<x>", "special": false, "normalized": true, "lstrip": true,
     "rstrip": true, "single_word": true}
  ],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
            "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "<0x61>": 4, "\u0120": 5},
            "merges": ["a b"]},
  "post_processor": {"type": "TemplateProcessing", "single": "<|s|> $A",
                     "special_tokens": {"<|s|>": {"id": "<|s|>", "ids": [6], "tokens": ["<|s|>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "ByteLevel"}]}
})";

void exercise(const glimpse::text::Tokenizer& tok, std::string_view text) {
  const auto e = tok.encode(text, true);
  glimpse::text::DecodeOptions options;
  (void)tok.decode(e.ids, options);
  options.skip_special_tokens = true;
  options.clean_up_tokenization_spaces = true;
  glimpse::text::IncrementalDecoder stream(tok, options);
  for (const auto id : e.ids) (void)stream.push(id);
  (void)stream.flush();
  // Ids that are out of range or negative are skipped, never read out of bounds.
  (void)tok.decode({-1, 1 << 30, static_cast<glimpse::text::TokenId>(tok.vocab_size())});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  try {
    if (nul == std::string_view::npos) {
      static const auto builtin = glimpse::text::Tokenizer::from_json_string(kBuiltIn, "builtin");
      exercise(builtin, input);
    } else {
      const auto tok = glimpse::text::Tokenizer::from_json_string(input.substr(0, nul), "fuzz");
      exercise(tok, input.substr(nul + 1));
    }
  } catch (const glimpse::Error&) {
  }
  return 0;
}
