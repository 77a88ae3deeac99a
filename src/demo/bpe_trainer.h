#pragma once

// A byte-level BPE trainer (the algorithm of tokenizers' BpeTrainer: count adjacent pairs in the
// pre-tokenized words, merge the most frequent, repeat), for the demo model's small vocabulary.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace glimpse::demo {

struct BpeTrainOptions {
  // Merges added at most (each adds one token); stops earlier when no pair occurs twice.
  std::int64_t max_merges = 700;
  // Words that must end as one token each (checked after training; an error names the first
  // that did not).
  std::vector<std::string> single_token_words;
};

struct BpeTrainResult {
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::int64_t first_merge_id = 0;                          // id of the first merged token
};

// Trains merges on `texts` with the pre-tokenizer of the byte-level BPE tokenizer.json at `path`
// (which has the 256 byte tokens and no merges, as write_random_checkpoint makes it), gives the
// new tokens the ids after the bytes, and rewrites the file. Throws ConfigError when a merged
// token's id would collide with an added token.
BpeTrainResult train_bpe_tokenizer(const std::string& path, const std::vector<std::string>& texts,
                                   const BpeTrainOptions& options);

}  // namespace glimpse::demo
