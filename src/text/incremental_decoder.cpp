#include "glimpse/text/incremental_decoder.h"

namespace glimpse::text {
namespace {

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

// Emitted ids kept in front of new ones, so that decoders that look at neighbours (Metaspace and
// Strip at the start of the text, sentencepiece's joins around added tokens) see the same
// context as in a full decode.
constexpr std::size_t kContext = 8;
// New ids that may pile up without producing text (skipped special tokens, a long invalid byte
// run) before they are emitted anyway, so that each push stays cheap.
constexpr std::size_t kMaxPending = 64;

}  // namespace

IncrementalDecoder::IncrementalDecoder(Tokenizer tokenizer, DecodeOptions options)
    : tokenizer_(std::move(tokenizer)), options_(options) {
  // clean_up_tokenization_spaces rewrites text behind the cursor (" ." -> "."), which a stream
  // cannot take back, so streamed text is never cleaned up.
  options_.clean_up_tokenization_spaces = false;
}

void IncrementalDecoder::reset() {
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
}

// Like tokenizers' DecodeStream (tokenizers/src/tokenizer/mod.rs: step_decode_stream): decode
// the window with and without the ids not yet emitted, and emit the difference once it is
// complete text.
std::string IncrementalDecoder::push(TokenId id) {
  ids_.push_back(id);
  const std::string text = tokenizer_.decode(ids_, options_);
  const bool extends =
      text.size() >= prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0;
  const bool ready = extends && text.size() > prefix_.size() && !ends_with_replacement(text);
  if (!ready && ids_.size() - prefix_index_ <= kMaxPending) return {};
  std::string out = extends ? text.substr(prefix_.size()) : std::string();
  // Everything in the window is emitted now; keep the last ids as context.
  if (ids_.size() > kContext) {
    ids_.erase(ids_.begin(), ids_.end() - static_cast<std::ptrdiff_t>(kContext));
    prefix_ = tokenizer_.decode(ids_, options_);
  } else {
    prefix_ = text;
  }
  prefix_index_ = ids_.size();
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out;
  if (ids_.size() > prefix_index_) {
    const std::string text = tokenizer_.decode(ids_, options_);
    if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0) {
      out = text.substr(prefix_.size());
    }
  }
  reset();
  return out;
}

}  // namespace glimpse::text
