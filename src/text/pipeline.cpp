// The tokenizer.json runtime: tokenizers/src/tokenizer/mod.rs (TokenizerImpl::encode_single_
// sequence and decode) for one sequence, without offsets.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_set>

#include "glimpse/core/error.h"
#include "text/backend.h"
#include "text/bpe.h"
#include "text/decoders.h"
#include "text/json_node.h"
#include "text/normalizers.h"
#include "text/post_processors.h"
#include "text/pre_tokenizers.h"
#include "text/unicode.h"

namespace glimpse::text::detail {
namespace {

using nlohmann::json;

constexpr const char* kUnderline = "\xE2\x96\x81";

// legacy=False for a Llama-style tokenizer.json. The legacy normalizer
// Sequence[Prepend("▁")?, Replace(" " -> "▁")] becomes a Metaspace pre-tokenizer (as
// transformers' LlamaConverter writes it for legacy=False), and encode() then follows the slow
// LlamaTokenizer.tokenize: "▁" + text, and a lone leading "▁" before a special token dropped.
// (The fast converter alone differs from the slow tokenizer on text that starts with spaces.)
// Returns whether the rewrite applied and, through `prefix`, whether the text gets the "▁".
bool apply_llama_non_legacy(json& root, bool& prefix) {
  const auto normalizer = root.find("normalizer");
  if (normalizer == root.end() || !normalizer->is_object()) return false;
  const auto pre = root.find("pre_tokenizer");
  if (pre != root.end() && !pre->is_null()) return false;
  if (normalizer->value("type", "") != "Sequence") return false;
  const auto list = normalizer->find("normalizers");
  if (list == normalizer->end() || !list->is_array()) return false;
  const std::string underline = "\xE2\x96\x81";
  bool prepend = false, replace = false;
  for (const auto& n : *list) {
    if (!n.is_object()) return false;
    const std::string type = n.value("type", "");
    if (type == "Prepend" && n.value("prepend", "") == underline && !replace && !prepend) {
      prepend = true;
    } else if (type == "Replace" && n.value("content", "") == underline && n.contains("pattern") &&
               n["pattern"] == json{{"String", " "}} && !replace) {
      replace = true;
    } else {
      return false;
    }
  }
  if (!replace) return false;
  prefix = prepend;
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "Metaspace"},
                           {"replacement", underline},
                           {"prepend_scheme", prepend ? "first" : "never"},
                           {"split", false}};
  return true;
}

class PipelineBackend : public Backend {
 public:
  PipelineBackend(json root, const std::string& source, const TokenizerConfig& config,
                  const TokenizerOptions& options, std::string kind)
      : source_(source),
        kind_(std::move(kind)),
        clean_up_default_(config.clean_up_tokenization_spaces) {
    if (options.legacy == false) llama_non_legacy_ = apply_llama_non_legacy(root, llama_prefix_);
    const JsonNode top(root, source);
    top.require_object();
    if (const auto n = top.find("normalizer")) normalizer_ = make_normalizer(*n);
    if (const auto n = top.find("pre_tokenizer")) pre_tokenizer_ = make_pre_tokenizer(*n);
    const JsonNode model = top.at("model");
    model.require_object();
    const std::string type = model.get_string("type", "BPE");
    if (type != "BPE") {
      (model.find("type") ? model.at("type") : model)
          .fail_unsupported("unsupported model type '" + type +
                            "' (glimpse supports BPE; WordPiece, WordLevel and Unigram are not "
                            "implemented)");
    }
    model_ = Bpe::from_json(model);
    if (const auto n = top.find("post_processor")) post_processor_ = make_post_processor(*n);
    if (const auto n = top.find("decoder")) decoder_ = make_decoder(*n);

    std::vector<AddedToken> added;
    if (const auto list = top.find("added_tokens")) {
      for (std::size_t i = 0; i < list->size(); ++i) {
        const JsonNode item = list->at(i);
        item.require_object();
        AddedToken t;
        const JsonNode id = item.at("id");
        t.id = id.as_int();
        if (t.id < 0 || t.id > INT32_MAX) id.fail("expected a token id in [0, 2^31)");
        t.content = item.get_string("content");
        t.special = item.get_bool("special", false);
        t.single_word = item.get_bool("single_word", false);
        t.lstrip = item.get_bool("lstrip", false);
        t.rstrip = item.get_bool("rstrip", false);
        t.normalized = item.get_bool("normalized", !t.special);
        added.push_back(std::move(t));
      }
    }
    added_ = AddedVocabulary(std::move(added), normalizer_.get());
    vocab_size_ = 0;
    for (const auto& t : added_.tokens()) {
      vocab_size_ = std::max<std::size_t>(vocab_size_, static_cast<std::size_t>(t.id) + 1);
      if (t.special) special_ids_.insert(t.id);
    }
    vocab_size_ = std::max(vocab_size_, model_->max_id_plus_one());
  }

  void encode(std::string_view text, bool add_special_tokens, std::vector<TokenId>& ids,
              std::vector<std::string>* tokens) const override {
    require_utf8(text, "the text to tokenize");
    Pieces pieces;
    const std::size_t first = ids.size();
    if (llama_non_legacy_ && !text.empty()) {
      // LlamaTokenizer.tokenize (legacy=False): "▁" + text with "▁" turned into spaces.
      std::string t = llama_prefix_ ? kUnderline : "";
      std::size_t pos = 0;
      while (true) {
        const auto hit = text.find(kUnderline, pos);
        t.append(text.substr(pos, hit == std::string_view::npos ? hit : hit - pos));
        if (hit == std::string_view::npos) break;
        t += ' ';
        pos = hit + 3;
      }
      pieces.push_back(Piece{std::move(t), true, -1});
    } else {
      pieces.push_back(Piece{std::string(text), true, -1});
    }
    // AddedVocabulary::extract_and_normalize: raw-matched tokens, then normalization of the
    // rest, then the normalized-matched tokens.
    added_.split(pieces, false);
    if (normalizer_) {
      for (auto& p : pieces) {
        if (p.id < 0) normalizer_->normalize(p.text);
      }
    }
    added_.split(pieces, true);
    if (pre_tokenizer_) {
      pre_tokenizer_->pre_tokenize(pieces);
    }
    std::vector<std::uint32_t> word_ids;
    for (const auto& p : pieces) {
      if (p.id >= 0) {
        ids.push_back(p.id);
        if (tokens) tokens->push_back(p.text);
        continue;
      }
      if (p.text.empty()) continue;
      word_ids.clear();
      model_->tokenize(p.text, word_ids);
      for (const auto id : word_ids) {
        ids.push_back(id);
        if (tokens) {
          const std::string* t = model_->id_to_token(id);
          tokens->push_back(t ? *t : std::string());
        }
      }
    }
    if (llama_non_legacy_ && ids.size() - first > 1) {
      const auto t0 = id_to_token(ids[first]);
      const auto t1 = id_to_token(ids[first + 1]);
      if (t0 == kUnderline && t1 && added_.is_special(*t1)) {
        ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(first));
        if (tokens) tokens->erase(tokens->begin() + static_cast<std::ptrdiff_t>(first));
      }
    }
    if (add_special_tokens && post_processor_) {
      std::vector<std::string> scratch;
      if (!tokens) scratch.resize(ids.size());
      post_processor_->process(ids, tokens ? *tokens : scratch);
    }
  }

  std::string decode(const std::vector<TokenId>& ids, const DecodeOptions& options) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const TokenId id : ids) {
      std::string token;
      if (const AddedToken* t = added_.find_id(id)) {
        token = t->content;
      } else if (id >= 0 && id <= INT32_MAX) {
        const std::string* t = model_->id_to_token(static_cast<std::uint32_t>(id));
        if (!t) continue;
        token = *t;
      } else {
        continue;
      }
      if (options.skip_special_tokens && added_.is_special(token)) continue;
      tokens.push_back(std::move(token));
    }
    std::string text;
    if (decoder_) {
      decoder_->decode_chain(tokens);
      for (const auto& t : tokens) text += t;
    } else {
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (i) text += ' ';
        text += tokens[i];
      }
    }
    if (options.clean_up_tokenization_spaces.value_or(clean_up_default_)) {
      text = clean_up_tokenization(std::move(text));
    }
    return text;
  }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    if (const auto id = added_.token_to_id(token)) return id;
    if (const auto id = model_->token_to_id(token)) return static_cast<TokenId>(*id);
    return std::nullopt;
  }

  std::optional<std::string> id_to_token(TokenId id) const override {
    if (const AddedToken* t = added_.find_id(id)) return t->content;
    if (id < 0 || id > INT32_MAX) return std::nullopt;
    if (const std::string* t = model_->id_to_token(static_cast<std::uint32_t>(id))) return *t;
    return std::nullopt;
  }

  std::size_t vocab_size() const override { return vocab_size_; }
  bool is_special(TokenId id) const override { return special_ids_.count(id) > 0; }
  std::string kind() const override { return kind_; }
  const std::string& source() const override { return source_; }

 private:
  std::string source_, kind_;
  bool clean_up_default_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Bpe> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  std::unordered_set<TokenId> special_ids_;
  std::size_t vocab_size_ = 0;
  bool llama_non_legacy_ = false;
  bool llama_prefix_ = false;
};

}  // namespace

std::shared_ptr<const Backend> make_pipeline_backend(json root, const std::string& source,
                                                     const TokenizerConfig& config,
                                                     const TokenizerOptions& options,
                                                     std::string kind) {
  return std::make_shared<PipelineBackend>(std::move(root), source, config, options,
                                           std::move(kind));
}

}  // namespace glimpse::text::detail
