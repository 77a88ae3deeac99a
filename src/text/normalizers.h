#pragma once

// tokenizer.json "normalizer" components (tokenizers/src/normalizers/).

#include <memory>
#include <string>

#include "text/json_node.h"

namespace glimpse::text::detail {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Builds the normalizer described by `node` (an object with "type"). Throws UnsupportedError for
// an unknown type and FormatError for a malformed one, naming the file and key.
std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node);

}  // namespace glimpse::text::detail
