#include "glimpse/text/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/json_util.h"
#include "glimpse/core/error.h"
#include "text/backend.h"

namespace glimpse::text {

namespace fs = std::filesystem;

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::shared_ptr<const detail::Backend> load_backend(const std::string& path,
                                                    const TokenizerOptions& options) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) {
    const detail::TokenizerConfig config = detail::read_tokenizer_config(p);
    if (is_file(p / "tokenizer.json")) {
      const std::string file = (p / "tokenizer.json").string();
      return detail::make_pipeline_backend(core::read_json_file(file), file, config, options,
                                           "tokenizer.json");
    }
    if (is_file(p / "vocab.json") && is_file(p / "merges.txt")) {
      return detail::make_vocab_merges_backend((p / "vocab.json").string(),
                                               (p / "merges.txt").string(), config, options);
    }
    if (is_file(p / "tokenizer.model")) {
      return detail::make_sentencepiece_backend((p / "tokenizer.model").string(), config, options);
    }
    throw InputError("no tokenizer in '" + path +
                     "': looked for tokenizer.json, vocab.json + merges.txt and tokenizer.model");
  }
  if (!is_file(p)) throw InputError("cannot open tokenizer '" + path + "': no such file or folder");
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const detail::TokenizerConfig config = detail::read_tokenizer_config(dir);
  const std::string name = p.filename().string();
  if (p.extension() == ".model") {
    return detail::make_sentencepiece_backend(path, config, options);
  }
  if (name == "vocab.json") {
    if (!is_file(dir / "merges.txt")) {
      throw InputError("'" + path + "' needs merges.txt beside it");
    }
    return detail::make_vocab_merges_backend(path, (dir / "merges.txt").string(), config, options);
  }
  if (p.extension() == ".json") {
    return detail::make_pipeline_backend(core::read_json_file(path), path, config, options,
                                         "tokenizer.json");
  }
  throw InputError("'" + path +
                   "' is not a tokenizer file (expected tokenizer.json, vocab.json or *.model)");
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const detail::Backend> backend)
    : backend_(std::move(backend)) {}

Tokenizer Tokenizer::load(const std::string& path, const TokenizerOptions& options) {
  return Tokenizer(load_backend(path, options));
}

Tokenizer Tokenizer::from_json_string(std::string_view json, const std::string& source,
                                      const TokenizerOptions& options,
                                      std::string_view config_json) {
  detail::TokenizerConfig config;
  if (!config_json.empty()) {
    config = detail::parse_tokenizer_config(
        core::parse_json_strict(config_json, "tokenizer_config.json"), "tokenizer_config.json");
  }
  return Tokenizer(detail::make_pipeline_backend(core::parse_json_strict(json, source), source,
                                                 config, options, "tokenizer.json"));
}

Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  Encoding e;
  backend_->encode(text, add_special_tokens, e.ids, &e.tokens);
  return e;
}

std::vector<TokenId> Tokenizer::encode_ids(std::string_view text, bool add_special_tokens) const {
  std::vector<TokenId> ids;
  backend_->encode(text, add_special_tokens, ids, nullptr);
  return ids;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, const DecodeOptions& options) const {
  return backend_->decode(ids, options);
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  return backend_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  return backend_->id_to_token(id);
}

std::size_t Tokenizer::vocab_size() const {
  return backend_->vocab_size();
}
bool Tokenizer::is_special(TokenId id) const {
  return backend_->is_special(id);
}
std::string Tokenizer::kind() const {
  return backend_->kind();
}
const std::string& Tokenizer::source() const {
  return backend_->source();
}

}  // namespace glimpse::text
