#pragma once

// Streaming detokenization: feed ids one at a time, get the text that became final. Text is held
// back while it ends in an incomplete UTF-8 character (which decodes to U+FFFD), so a streamed
// piece never carries half a character. Like tokenizers' DecodeStream, it decodes a short window
// of recent ids (the new ones after up to 8 already emitted, for context) and emits what the new
// ids add, so decoders that depend on neighbours (Metaspace, Strip, byte fallback, sentencepiece)
// give the text of a full decode. Streamed text is never cleaned up
// (clean_up_tokenization_spaces rewrites text that was already emitted).

#include <string>
#include <vector>

#include "glimpse/text/tokenizer.h"

namespace glimpse::text {

class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(Tokenizer tokenizer, DecodeOptions options = {});

  // The text that `id` completes (possibly empty).
  std::string push(TokenId id);
  // Everything still held back (an incomplete character comes out as U+FFFD). Resets.
  std::string flush();
  void reset();

 private:
  Tokenizer tokenizer_;
  DecodeOptions options_;
  std::vector<TokenId> ids_;  // the window: emitted context, then pending ids
  std::string prefix_;        // decode of the emitted part, ids_[0, prefix_index_)
  std::size_t prefix_index_ = 0;
};

}  // namespace glimpse::text
