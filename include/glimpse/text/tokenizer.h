#pragma once

// Text <-> token ids with Hugging Face semantics.
//
// Three kinds of checkpoint tokenizer are read:
//  * tokenizer.json (the `tokenizers` library's format): added tokens, normalizer,
//    pre-tokenizer, BPE model, post-processor and decoder, run as tokenizers 0.21 runs them;
//  * vocab.json + merges.txt (byte-level BPE, as the slow Qwen2Tokenizer / GPT2Tokenizer);
//  * tokenizer.model (sentencepiece, as the slow LlamaTokenizer), through a plug-in library
//    (see docs/TOKENIZERS.md for why it is a plug-in).
// tokenizer_config.json beside the file supplies the added tokens of the slow formats, `legacy`,
// `add_bos_token` and `clean_up_tokenization_spaces`.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::text {

using TokenId = std::int64_t;

struct TokenizerOptions {
  // LlamaTokenizer's `legacy` flag: how text right after a special token is encoded.
  //  legacy=true: every piece between special tokens is encoded as if it started the text, so
  //    it gets the sentencepiece dummy prefix ("</s>second" -> "</s>", "▁second").
  //  legacy=false: only the start of the text gets the prefix ("</s>", "second").
  // Unset: tokenizer.model follows tokenizer_config.json "legacy" (true when absent, as
  // transformers does); tokenizer.json runs as written (transformers' fast tokenizer ignores the
  // flag unless it converts from the slow one). Set on a tokenizer.json with the Llama legacy
  // normalizer (Prepend "▁" + Replace " " -> "▁"), legacy=false rewrites it the way
  // transformers' LlamaConverter does for legacy=False (a Metaspace pre-tokenizer with
  // prepend_scheme "first").
  std::optional<bool> legacy;
};

struct DecodeOptions {
  // Drop special tokens (tokens flagged special, and the bos/eos/unk/pad/additional special
  // tokens of tokenizer_config.json).
  bool skip_special_tokens = false;
  // transformers' clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...). Unset: the
  // tokenizer_config.json value (false when absent).
  std::optional<bool> clean_up_tokenization_spaces;
  // Sentencepiece (slow LlamaTokenizer) only: join added tokens and text with spaces, as
  // transformers' PreTrainedTokenizer._decode does by default.
  bool spaces_between_special_tokens = true;
};

struct Encoding {
  std::vector<TokenId> ids;
  std::vector<std::string> tokens;  // the token strings ("Ġworld", "▁Hello", "<|im_end|>")
};

namespace detail {
class Backend;
}

// Copies share one loaded tokenizer; const methods may be called from several threads at once.
class Tokenizer {
 public:
  // A tokenizer file or a checkpoint folder. A folder is searched for tokenizer.json, then
  // vocab.json + merges.txt, then tokenizer.model. A file is read by its name: *.model is
  // sentencepiece, vocab.json pairs with merges.txt beside it, other *.json is tokenizer.json.
  // Throws InputError (nothing found), FormatError / ConfigError (malformed) or
  // UnsupportedError (a component glimpse does not run), naming the file and key.
  static Tokenizer load(const std::string& path, const TokenizerOptions& options = {});

  // tokenizer.json content; `source` names it in messages. `config_json` is the content of
  // tokenizer_config.json, or empty.
  static Tokenizer from_json_string(std::string_view json,
                                    const std::string& source = "tokenizer.json",
                                    const TokenizerOptions& options = {},
                                    std::string_view config_json = {});

  // Text -> ids and tokens. `add_special_tokens` runs the post-processor (e.g. adds BOS).
  // Throws InputError when `text` is not valid UTF-8.
  Encoding encode(std::string_view text, bool add_special_tokens = false) const;
  std::vector<TokenId> encode_ids(std::string_view text, bool add_special_tokens = false) const;

  // Ids -> text. Ids outside the vocabulary are skipped, as the tokenizers library does. Bytes
  // that do not form UTF-8 become U+FFFD.
  std::string decode(const std::vector<TokenId>& ids, const DecodeOptions& options = {}) const;

  std::optional<TokenId> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(TokenId id) const;
  // One past the largest id (model vocabulary and added tokens).
  std::size_t vocab_size() const;
  // True for special added tokens and the configured special tokens.
  bool is_special(TokenId id) const;

  // "tokenizer.json", "vocab.json+merges.txt" or "sentencepiece".
  std::string kind() const;
  // The file it was read from.
  const std::string& source() const;

 private:
  explicit Tokenizer(std::shared_ptr<const detail::Backend> backend);
  std::shared_ptr<const detail::Backend> backend_;
};

}  // namespace glimpse::text
