// tokenizer.model: transformers' slow LlamaTokenizer (models/llama/tokenization_llama.py) over
// sentencepiece, which runs in the glimpse_sentencepiece plug-in (src/text/sentencepiece_abi.h).
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "glimpse/core/error.h"
#include "text/backend.h"
#include "text/sentencepiece_abi.h"
#include "text/unicode.h"

#if defined(__SANITIZE_ADDRESS__)
#define GLIMPSE_TEXT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLIMPSE_TEXT_ASAN 1
#endif
#endif

namespace glimpse::text::detail {
namespace {

constexpr const char* kPluginName = "libglimpse_sentencepiece.so";
constexpr const char* kUnderline = "\xE2\x96\x81";  // sentencepiece's "▁"

struct Plugin {
  decltype(&glimpse_spm_load) load = nullptr;
  decltype(&glimpse_spm_free) free_model = nullptr;
  decltype(&glimpse_spm_piece_size) piece_size = nullptr;
  decltype(&glimpse_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&glimpse_spm_piece_type) piece_type = nullptr;
  decltype(&glimpse_spm_encode) encode = nullptr;
  decltype(&glimpse_spm_encoding_free) encoding_free = nullptr;
  decltype(&glimpse_spm_decode_pieces) decode_pieces = nullptr;
  decltype(&glimpse_spm_string_free) string_free = nullptr;
};

// Where to look: $GLIMPSE_SENTENCEPIECE_PLUGIN, then the folder of libglimpse itself (the build
// tree's lib/ or the installed libdir); no build path is compiled in.
std::vector<std::string> plugin_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("GLIMPSE_SENTENCEPIECE_PLUGIN"); env && *env) {
    paths.emplace_back(env);
  }
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&plugin_candidates), &info) && info.dli_fname) {
    const auto dir = std::filesystem::path(info.dli_fname).parent_path();
    paths.push_back((dir / kPluginName).string());
  }
  return paths;
}

template <class F>
void bind(void* handle, const char* name, F& fn, const std::string& path) {
  fn = reinterpret_cast<F>(dlsym(handle, name));
  if (!fn) throw Error(path + ": the sentencepiece plug-in lacks '" + name + "'");
}

Plugin load_plugin() {
#ifdef GLIMPSE_TEXT_ASAN
  throw UnsupportedError(
      "tokenizer.model needs the sentencepiece plug-in, which is loaded with RTLD_DEEPBIND; "
      "AddressSanitizer does not allow RTLD_DEEPBIND, so sentencepiece tokenizers are unavailable "
      "in sanitizer builds (use a tokenizer.json, or a build without GLIMPSE_SANITIZE)");
#else
  std::string tried;
  for (const auto& path : plugin_candidates()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      tried += (tried.empty() ? "" : ", ") + path + " (absent)";
      continue;
    }
    // DEEPBIND: sentencepiece resolves its protobuf symbols inside its own library first.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!handle) {
      const char* err = dlerror();
      tried += (tried.empty() ? "" : ", ") + path + " (" + (err ? err : "dlopen failed") + ")";
      continue;
    }
    // Never dlclosed: models may live until exit.
    auto version = reinterpret_cast<decltype(&glimpse_spm_abi_version)>(
        dlsym(handle, "glimpse_spm_abi_version"));
    if (!version || version() != GLIMPSE_SPM_ABI_VERSION) {
      throw Error(path + ": sentencepiece plug-in of another version (rebuild glimpse)");
    }
    Plugin p;
    bind(handle, "glimpse_spm_load", p.load, path);
    bind(handle, "glimpse_spm_free", p.free_model, path);
    bind(handle, "glimpse_spm_piece_size", p.piece_size, path);
    bind(handle, "glimpse_spm_id_to_piece", p.id_to_piece, path);
    bind(handle, "glimpse_spm_piece_type", p.piece_type, path);
    bind(handle, "glimpse_spm_encode", p.encode, path);
    bind(handle, "glimpse_spm_encoding_free", p.encoding_free, path);
    bind(handle, "glimpse_spm_decode_pieces", p.decode_pieces, path);
    bind(handle, "glimpse_spm_string_free", p.string_free, path);
    return p;
  }
  throw Error("tokenizer.model needs the glimpse_sentencepiece plug-in, which was not found: " +
              tried + "; install it next to libglimpse or set GLIMPSE_SENTENCEPIECE_PLUGIN");
#endif
}

const Plugin& plugin() {
  static std::mutex mutex;
  static std::unique_ptr<Plugin> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (!loaded) loaded = std::make_unique<Plugin>(load_plugin());  // retried after a failure
  return *loaded;
}

struct Encoded {
  std::vector<TokenId> ids;
  std::vector<std::string> pieces;
};

class SentencePieceBackend : public Backend {
 public:
  SentencePieceBackend(const std::string& path, const TokenizerConfig& config,
                       const TokenizerOptions& options)
      : clean_up_default_(config.clean_up_tokenization_spaces),
        source_(path),
        plugin_(plugin()),
        model_(nullptr, plugin_.free_model) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError("cannot open '" + path + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string bytes = ss.str();
    legacy_ = options.legacy.value_or(config.legacy.value_or(true));
    if (!legacy_) {
      // LlamaTokenizer.get_spm_processor for legacy=False: normalizer_spec.add_dummy_prefix =
      // False, merged into the ModelProto. Appending the serialized field (ModelProto field 3,
      // NormalizerSpec field 3 = false) is exactly a protobuf merge.
      bytes.append("\x1A\x02\x18\x00", 4);
    }
    char error[512] = {0};
    model_.reset(plugin_.load(bytes.data(), bytes.size(), error, sizeof(error)));
    if (!model_) {
      throw FormatError(path + ": not a sentencepiece model: " + std::string(error));
    }
    const int32_t n = plugin_.piece_size(model_.get());
    pieces_.reserve(static_cast<std::size_t>(n));
    for (int32_t id = 0; id < n; ++id) {
      const char* p = nullptr;
      std::size_t size = 0;
      if (!plugin_.id_to_piece(model_.get(), id, &p, &size)) p = "", size = 0;
      pieces_.emplace_back(p, size);
      piece_ids_.emplace(pieces_.back(), id);
    }

    unk_token_ = config.unk_token.value_or("<unk>");
    add_bos_ = config.add_bos_token.value_or(true);
    add_eos_ = config.add_eos_token.value_or(false);
    add_prefix_space_ = config.add_prefix_space.value_or(true);
    const std::string bos = config.bos_token.value_or("<s>");
    const std::string eos = config.eos_token.value_or("</s>");
    std::vector<std::string> special_names = {unk_token_, bos, eos};
    if (config.pad_token) special_names.push_back(*config.pad_token);
    for (const auto& s : config.additional_special_tokens) special_names.push_back(s);

    // Added tokens: added_tokens_decoder, plus the special tokens transformers adds at init.
    std::vector<AddedToken> added;
    std::unordered_set<std::string> seen;
    for (auto t : config.added_tokens) {
      t.normalized = false;  // the slow tokenizer matches all added tokens on the raw text
      seen.insert(t.content);
      added.push_back(std::move(t));
    }
    for (const auto& name : special_names) {
      if (seen.count(name)) continue;
      const auto it = piece_ids_.find(name);
      if (it == piece_ids_.end()) continue;
      AddedToken t;
      t.content = name;
      t.id = it->second;
      t.special = true;
      t.normalized = false;
      seen.insert(name);
      added.push_back(std::move(t));
    }
    added_ = AddedVocabulary(std::move(added), nullptr);
    for (const auto& name : special_names) {
      all_special_.insert(name);
      if (const auto id = token_to_id(name)) special_ids_.insert(*id);
    }
    for (const auto& t : added_.tokens()) {
      if (t.special) special_ids_.insert(t.id);
    }
    // PreTrainedTokenizer._decode's legacy_added_tokens.
    for (const auto& t : added_.tokens()) {
      if (!all_special_.count(t.content)) legacy_added_.insert(t.content);
    }
    for (const auto& s : config.additional_special_tokens) {
      if (const auto id = token_to_id(s); id && *id >= n) legacy_added_.insert(s);
    }
    if (const auto id = token_to_id(bos)) bos_id_ = *id;
    if (const auto id = token_to_id(eos)) eos_id_ = *id;
    unk_token_length_ = sp_encode(unk_token_).ids.size();
    vocab_size_ = static_cast<std::size_t>(n);
    for (const auto& t : added_.tokens()) {
      vocab_size_ = std::max(vocab_size_, static_cast<std::size_t>(t.id) + 1);
    }
  }

  void encode(std::string_view text, bool add_special_tokens, std::vector<TokenId>& ids,
              std::vector<std::string>* tokens) const override {
    require_utf8(text, "the text to tokenize");
    Encoded out;
    // LlamaTokenizer.tokenize
    if (legacy_ || text.empty()) {
      tokenize_chunks(std::string(text), out);
    } else {
      std::string t = replace_underline(text);
      if (add_prefix_space_) t.insert(0, kUnderline);
      tokenize_chunks(t, out);
      if (out.pieces.size() > 1 && out.pieces[0] == kUnderline &&
          all_special_.count(out.pieces[1])) {
        out.pieces.erase(out.pieces.begin());
        out.ids.erase(out.ids.begin());
      }
    }
    // build_inputs_with_special_tokens
    if (add_special_tokens && add_bos_ && bos_id_) {
      ids.push_back(*bos_id_);
      if (tokens) tokens->push_back(pieces_or_added(*bos_id_));
    }
    ids.insert(ids.end(), out.ids.begin(), out.ids.end());
    if (tokens) tokens->insert(tokens->end(), out.pieces.begin(), out.pieces.end());
    if (add_special_tokens && add_eos_ && eos_id_) {
      ids.push_back(*eos_id_);
      if (tokens) tokens->push_back(pieces_or_added(*eos_id_));
    }
  }

  // PreTrainedTokenizer._decode with LlamaTokenizer.convert_tokens_to_string.
  std::string decode(const std::vector<TokenId>& ids, const DecodeOptions& options) const override {
    std::vector<std::string> tokens;
    for (const TokenId id : ids) {
      if (options.skip_special_tokens && special_ids_.count(id)) continue;
      if (const auto t = id_to_token(id)) tokens.push_back(*t);
    }
    std::vector<std::string> sub_texts;
    std::vector<std::string> current;
    auto flush = [&] {
      if (current.empty()) return;
      std::string s = tokens_to_string(current);
      if (!s.empty()) sub_texts.push_back(std::move(s));
      current.clear();
    };
    for (auto& token : tokens) {
      if (options.skip_special_tokens && all_special_.count(token)) continue;
      if (legacy_added_.count(token)) {
        flush();
        sub_texts.push_back(token);
      } else {
        current.push_back(token);
      }
    }
    if (!current.empty()) sub_texts.push_back(tokens_to_string(current));
    std::string text;
    for (std::size_t i = 0; i < sub_texts.size(); ++i) {
      if (i && options.spaces_between_special_tokens) text += ' ';
      text += sub_texts[i];
    }
    if (options.clean_up_tokenization_spaces.value_or(clean_up_default_)) {
      text = clean_up_tokenization(std::move(text));
    }
    return text;
  }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    if (const auto id = added_.token_to_id(token)) return id;
    const auto it = piece_ids_.find(std::string(token));
    if (it == piece_ids_.end()) return std::nullopt;
    return it->second;
  }

  std::optional<std::string> id_to_token(TokenId id) const override {
    if (const AddedToken* t = added_.find_id(id)) return t->content;
    if (id >= 0 && static_cast<std::size_t>(id) < pieces_.size()) {
      return pieces_[static_cast<std::size_t>(id)];
    }
    return std::nullopt;
  }

  std::size_t vocab_size() const override { return vocab_size_; }
  bool is_special(TokenId id) const override { return special_ids_.count(id) > 0; }
  std::string kind() const override { return "sentencepiece"; }
  const std::string& source() const override { return source_; }

 private:
  static std::string replace_underline(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (true) {
      const auto hit = text.find(kUnderline, pos);
      out.append(text.substr(pos, hit == std::string_view::npos ? hit : hit - pos));
      if (hit == std::string_view::npos) break;
      out += ' ';
      pos = hit + 3;
    }
    return out;
  }

  std::string pieces_or_added(TokenId id) const { return id_to_token(id).value_or(""); }

  Encoded sp_encode(const std::string& text) const {
    char error[512] = {0};
    glimpse_spm_encoding* enc =
        plugin_.encode(model_.get(), text.data(), text.size(), error, sizeof(error));
    if (!enc) throw Error(source_ + ": sentencepiece failed to encode: " + std::string(error));
    Encoded out;
    out.ids.reserve(enc->size);
    out.pieces.reserve(enc->size);
    for (std::size_t i = 0; i < enc->size; ++i) {
      out.ids.push_back(enc->ids[i]);
      out.pieces.emplace_back(enc->piece_bytes + enc->piece_offsets[i],
                              enc->piece_offsets[i + 1] - enc->piece_offsets[i]);
    }
    plugin_.encoding_free(enc);
    return out;
  }

  // PreTrainedTokenizer.tokenize: split on added tokens, then LlamaTokenizer._tokenize.
  void tokenize_chunks(const std::string& text, Encoded& out) const {
    Pieces chunks;
    chunks.push_back(Piece{text, true, -1});
    added_.split(chunks, false);
    added_.split(chunks, true);
    for (const auto& c : chunks) {
      if (c.text.empty()) continue;
      if (c.id >= 0) {
        out.ids.push_back(c.id);
        out.pieces.push_back(c.text);
        continue;
      }
      const bool prefixed = c.text[0] == ' ' || c.text.rfind(kUnderline, 0) == 0;
      if (legacy_ || !prefixed) {
        Encoded e = sp_encode(c.text);
        out.ids.insert(out.ids.end(), e.ids.begin(), e.ids.end());
        out.pieces.insert(out.pieces.end(), e.pieces.begin(), e.pieces.end());
        continue;
      }
      // Encode "<unk>" + text and drop the pieces of "<unk>", so that sentencepiece (without
      // its dummy prefix) keeps the leading "▁".
      Encoded e = sp_encode(unk_token_ + c.text);
      const std::size_t drop = e.ids.size() >= unk_token_length_ ? unk_token_length_ : 0;
      out.ids.insert(out.ids.end(), e.ids.begin() + static_cast<std::ptrdiff_t>(drop), e.ids.end());
      out.pieces.insert(out.pieces.end(), e.pieces.begin() + static_cast<std::ptrdiff_t>(drop),
                        e.pieces.end());
    }
  }

  std::string sp_decode(const std::vector<std::string>& pieces) const {
    if (pieces.empty()) return "";
    std::vector<const char*> ptrs;
    std::vector<std::size_t> sizes;
    for (const auto& p : pieces) {
      ptrs.push_back(p.data());
      sizes.push_back(p.size());
    }
    char error[512] = {0};
    std::size_t size = 0;
    char* s = plugin_.decode_pieces(model_.get(), ptrs.data(), sizes.data(), pieces.size(), &size,
                                    error, sizeof(error));
    if (!s) throw Error(source_ + ": sentencepiece failed to decode: " + std::string(error));
    std::string out(s, size);
    plugin_.string_free(s);
    return out;
  }

  // LlamaTokenizer.convert_tokens_to_string.
  std::string tokens_to_string(std::vector<std::string> tokens) const {
    if (add_prefix_space_ && tokens[0].rfind(kUnderline, 0) == 0) tokens[0].erase(0, 3);
    std::string out;
    std::vector<std::string> current;
    bool prev_is_special = false;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string& token = tokens[i];
      if (all_special_.count(token)) {
        if (!prev_is_special && i != 0 && legacy_) out += ' ';
        out += sp_decode(current) + token;
        prev_is_special = true;
        current.clear();
      } else {
        if (prev_is_special && i == 1 && add_prefix_space_ && token.rfind(kUnderline, 0) != 0) {
          out += ' ';
        }
        current.push_back(token);
        prev_is_special = false;
      }
    }
    out += sp_decode(current);
    return out;
  }

  bool clean_up_default_ = false;
  std::string source_;
  const Plugin& plugin_;
  std::unique_ptr<glimpse_spm_model, decltype(&glimpse_spm_free)> model_;
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, TokenId> piece_ids_;
  AddedVocabulary added_;
  std::unordered_set<std::string> all_special_;
  std::unordered_set<std::string> legacy_added_;
  std::unordered_set<TokenId> special_ids_;
  std::string unk_token_;
  std::size_t unk_token_length_ = 0;
  bool legacy_ = true, add_bos_ = true, add_eos_ = false, add_prefix_space_ = true;
  std::optional<TokenId> bos_id_, eos_id_;
  std::size_t vocab_size_ = 0;
};

}  // namespace

std::shared_ptr<const Backend> make_sentencepiece_backend(const std::string& model_path,
                                                          const TokenizerConfig& config,
                                                          const TokenizerOptions& options) {
  return std::make_shared<SentencePieceBackend>(model_path, config, options);
}

}  // namespace glimpse::text::detail
