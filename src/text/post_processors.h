#pragma once

// tokenizer.json "post_processor" components (tokenizers/src/processors/), for one sequence:
// they add the special tokens when the caller asks for them.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/json_node.h"

namespace glimpse::text::detail {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<std::int64_t>& ids, std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const JsonNode& node);

}  // namespace glimpse::text::detail
