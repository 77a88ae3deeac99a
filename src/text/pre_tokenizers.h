#pragma once

// tokenizer.json "pre_tokenizer" components (tokenizers/src/pre_tokenizers/).

#include <memory>

#include "text/json_node.h"
#include "text/pieces.h"

namespace glimpse::text::detail {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and may rewrite) every piece that is not an added token; drops empty pieces.
  void pre_tokenize(Pieces& pieces) const;

 protected:
  // Appends the parts of one piece to `out`.
  virtual void split(Piece&& piece, Pieces& out) const = 0;
};

// Builds the pre-tokenizer described by `node`. Throws UnsupportedError for an unknown type and
// FormatError/ConfigError for a malformed one, naming the file and key.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node);

}  // namespace glimpse::text::detail
