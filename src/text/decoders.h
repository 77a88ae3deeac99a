#pragma once

// tokenizer.json "decoder" components (tokenizers/src/decoders/): each rewrites the list of token
// strings (decode_chain); the pipeline concatenates what is left.

#include <memory>
#include <string>
#include <vector>

#include "text/json_node.h"

namespace glimpse::text::detail {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const JsonNode& node);

}  // namespace glimpse::text::detail
