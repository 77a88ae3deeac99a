#pragma once

// The interface behind glimpse::text::Tokenizer, and what the loaders share: the settings read
// from tokenizer_config.json.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glimpse/text/tokenizer.h"
#include "text/added_vocabulary.h"

namespace glimpse::text::detail {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void encode(std::string_view text, bool add_special_tokens, std::vector<TokenId>& ids,
                      std::vector<std::string>* tokens) const = 0;
  virtual std::string decode(const std::vector<TokenId>& ids,
                             const DecodeOptions& options) const = 0;
  virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;
  virtual std::optional<std::string> id_to_token(TokenId id) const = 0;
  virtual std::size_t vocab_size() const = 0;
  virtual bool is_special(TokenId id) const = 0;
  virtual std::string kind() const = 0;
  virtual const std::string& source() const = 0;
};

// tokenizer_config.json (transformers' PreTrainedTokenizerBase init kwargs), as far as glimpse
// uses it. All fields keep transformers' defaults when the file or the key is absent.
struct TokenizerConfig {
  std::string source;  // the file, or empty
  std::string tokenizer_class;
  std::optional<bool> legacy;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::optional<bool> add_prefix_space;
  bool clean_up_tokenization_spaces = false;
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::vector<std::string> additional_special_tokens;
  // "added_tokens_decoder", else added_tokens.json (+ special_tokens_map.json).
  std::vector<AddedToken> added_tokens;

  // bos/eos/unk/pad and the additional special tokens (transformers' all_special_tokens).
  std::vector<std::string> special_token_names() const;
};

TokenizerConfig parse_tokenizer_config(const nlohmann::json& value, const std::string& source);
// Reads `dir`/tokenizer_config.json (and added_tokens.json / special_tokens_map.json when the
// config has no added_tokens_decoder). Missing files give the defaults.
TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir);

// transformers' PreTrainedTokenizerBase.clean_up_tokenization.
std::string clean_up_tokenization(std::string text);

// The tokenizer.json runtime.
std::shared_ptr<const Backend> make_pipeline_backend(nlohmann::json root, const std::string& source,
                                                     const TokenizerConfig& config,
                                                     const TokenizerOptions& options,
                                                     std::string kind);
// vocab.json + merges.txt (slow byte-level BPE).
std::shared_ptr<const Backend> make_vocab_merges_backend(const std::string& vocab_path,
                                                         const std::string& merges_path,
                                                         const TokenizerConfig& config,
                                                         const TokenizerOptions& options);
// tokenizer.model (slow LlamaTokenizer over sentencepiece).
std::shared_ptr<const Backend> make_sentencepiece_backend(const std::string& model_path,
                                                          const TokenizerConfig& config,
                                                          const TokenizerOptions& options);

}  // namespace glimpse::text::detail
