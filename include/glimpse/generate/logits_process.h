#pragma once

// Logits processors and warpers of transformers 4.50 (generation/logits_process.py), one class
// each under the reference's class name, and the list GenerationMixin._get_logits_processor
// (generation/utils.py) builds from a GenerationConfig, in its order. Every processor computes
// what the reference computes with the same ATen operations, so that the processed scores, and
// hence greedy and sampled tokens, match it.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "glimpse/generate/generation_config.h"

namespace glimpse::generate {

class LogitsProcessor {
 public:
  virtual ~LogitsProcessor();
  virtual std::string name() const = 0;
  // input_ids: [B, L] int64, every token of each row so far (prompt and generated); scores:
  // [B, V] floating point (fp32 in the generator), rewritten in place or replaced. Throws
  // InputError for shapes that do not fit and for token ids outside the vocabulary.
  virtual at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const = 0;
};

class LogitsProcessorList {
 public:
  void add(std::unique_ptr<LogitsProcessor> processor);
  std::size_t size() const { return processors_.size(); }
  bool empty() const { return processors_.empty(); }
  const LogitsProcessor& operator[](std::size_t i) const { return *processors_.at(i); }
  std::vector<std::string> names() const;
  // Applies every processor in order (LogitsProcessorList.__call__).
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const;

 private:
  std::vector<std::unique_ptr<LogitsProcessor>> processors_;
};

// The list _get_logits_processor builds for `config` (validated first), in its order:
// RepetitionPenalty, NoRepeatNGram, NoBadWords, MinLength, MinNewTokensLength, ForcedBOSToken,
// ForcedEOSToken, InfNanRemove, SuppressTokens, SuppressTokensAtBegin, then, only when do_sample,
// Temperature, TopK, TopP, MinP, and LogitNormalization last. `prompt_length` is input_ids'
// length at the first step (image and video placeholders included), which min_new_tokens,
// max_new_tokens and begin_suppress_tokens count from.
//
// Then, as GenerationMixin._sample: greedy search takes the argmax of the processed scores;
// sampling draws at::multinomial(softmax(processed scores), 1, false, gen), each sequence from its
// own gen = at::make_generator<at::CPUGeneratorImpl>(seed) (GenerationConfig::seed).
LogitsProcessorList make_logits_processors(const GenerationConfig& config,
                                           std::int64_t prompt_length);

// RepetitionPenaltyLogitsProcessor: the score of every token present in input_ids is divided by
// `penalty` when positive and multiplied by it when negative, once however often the token occurs.
class RepetitionPenaltyLogitsProcessor final : public LogitsProcessor {
 public:
  explicit RepetitionPenaltyLogitsProcessor(double penalty);
  std::string name() const override { return "RepetitionPenaltyLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  double penalty_;
};

// NoRepeatNGramLogitsProcessor: bans every token that would complete an n-gram already present in
// the row.
class NoRepeatNGramLogitsProcessor final : public LogitsProcessor {
 public:
  explicit NoRepeatNGramLogitsProcessor(std::int64_t ngram_size);
  std::string name() const override { return "NoRepeatNGramLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::int64_t ngram_size_;
};

// NoBadWordsLogitsProcessor (a SequenceBiasLogitsProcessor with -inf biases): single-token bad
// words are banned always, the last token of a longer one when the row ends with the rest of it.
// Bad words equal to a lone eos id are dropped, as in the reference.
class NoBadWordsLogitsProcessor final : public LogitsProcessor {
 public:
  NoBadWordsLogitsProcessor(const std::vector<std::vector<std::int64_t>>& bad_words_ids,
                            const std::vector<std::int64_t>& eos_token_ids);
  std::string name() const override { return "NoBadWordsLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::vector<std::int64_t> single_;               // banned at every step
  std::vector<std::vector<std::int64_t>> longer_;  // banned after their prefix
};

// MinLengthLogitsProcessor: eos ids get -inf while the row (prompt included) is shorter than
// min_length.
class MinLengthLogitsProcessor final : public LogitsProcessor {
 public:
  MinLengthLogitsProcessor(std::int64_t min_length, std::vector<std::int64_t> eos_token_ids);
  std::string name() const override { return "MinLengthLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::int64_t min_length_;
  std::vector<std::int64_t> eos_;
};

// MinNewTokensLengthLogitsProcessor: eos ids get -inf until min_new_tokens tokens follow the
// prompt.
class MinNewTokensLengthLogitsProcessor final : public LogitsProcessor {
 public:
  MinNewTokensLengthLogitsProcessor(std::int64_t prompt_length_to_skip, std::int64_t min_new_tokens,
                                    std::vector<std::int64_t> eos_token_ids);
  std::string name() const override { return "MinNewTokensLengthLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::int64_t prompt_length_;
  std::int64_t min_new_tokens_;
  std::vector<std::int64_t> eos_;
};

// ForcedBOSTokenLogitsProcessor: when the row holds one token, every score but bos's is -inf and
// bos's is 0.
class ForcedBOSTokenLogitsProcessor final : public LogitsProcessor {
 public:
  explicit ForcedBOSTokenLogitsProcessor(std::int64_t bos_token_id);
  std::string name() const override { return "ForcedBOSTokenLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::int64_t bos_;
};

// ForcedEOSTokenLogitsProcessor: when the row holds max_length - 1 tokens, every score but the eos
// ids' is -inf and theirs is 0.
class ForcedEOSTokenLogitsProcessor final : public LogitsProcessor {
 public:
  ForcedEOSTokenLogitsProcessor(std::int64_t max_length, std::vector<std::int64_t> eos_token_ids);
  std::string name() const override { return "ForcedEOSTokenLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::int64_t max_length_;
  std::vector<std::int64_t> eos_;
};

// InfNanRemoveLogitsProcessor: NaN becomes 0, +-inf the dtype's largest and lowest finite values.
class InfNanRemoveLogitsProcessor final : public LogitsProcessor {
 public:
  std::string name() const override { return "InfNanRemoveLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;
};

// SuppressTokensLogitsProcessor: the listed ids get -inf at every step (ids outside the vocabulary
// are ignored, as torch.isin ignores them).
class SuppressTokensLogitsProcessor final : public LogitsProcessor {
 public:
  explicit SuppressTokensLogitsProcessor(std::vector<std::int64_t> suppress_tokens);
  std::string name() const override { return "SuppressTokensLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::vector<std::int64_t> tokens_;
};

// SuppressTokensAtBeginLogitsProcessor: the listed ids get -inf when the row holds exactly
// begin_index tokens (the first generated step).
class SuppressTokensAtBeginLogitsProcessor final : public LogitsProcessor {
 public:
  SuppressTokensAtBeginLogitsProcessor(std::vector<std::int64_t> begin_suppress_tokens,
                                       std::int64_t begin_index);
  std::string name() const override { return "SuppressTokensAtBeginLogitsProcessor"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::vector<std::int64_t> tokens_;
  std::int64_t begin_index_;
};

// TemperatureLogitsWarper: scores / temperature.
class TemperatureLogitsWarper final : public LogitsProcessor {
 public:
  explicit TemperatureLogitsWarper(double temperature);
  std::string name() const override { return "TemperatureLogitsWarper"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  double temperature_;
};

// TopKLogitsWarper: -inf for scores below the k-th largest (ties with it are kept).
class TopKLogitsWarper final : public LogitsProcessor {
 public:
  explicit TopKLogitsWarper(std::int64_t top_k, std::int64_t min_tokens_to_keep = 1);
  std::string name() const override { return "TopKLogitsWarper"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  std::int64_t top_k_;
};

// TopPLogitsWarper: sorted ascending, the tokens whose cumulative probability is <= 1 - top_p get
// -inf, keeping at least min_tokens_to_keep.
class TopPLogitsWarper final : public LogitsProcessor {
 public:
  explicit TopPLogitsWarper(double top_p, std::int64_t min_tokens_to_keep = 1);
  std::string name() const override { return "TopPLogitsWarper"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  double top_p_;
  std::int64_t min_tokens_to_keep_;
};

// MinPLogitsWarper: -inf for tokens whose probability is below min_p times the top probability,
// keeping at least min_tokens_to_keep.
class MinPLogitsWarper final : public LogitsProcessor {
 public:
  explicit MinPLogitsWarper(double min_p, std::int64_t min_tokens_to_keep = 1);
  std::string name() const override { return "MinPLogitsWarper"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;

 private:
  double min_p_;
  std::int64_t min_tokens_to_keep_;
};

// LogitNormalization: log_softmax over the vocabulary.
class LogitNormalization final : public LogitsProcessor {
 public:
  std::string name() const override { return "LogitNormalization"; }
  at::Tensor operator()(const at::Tensor& input_ids, at::Tensor scores) const override;
};

// Per-row scores of a chosen token, from raw or processed logits (computed in fp32).
struct TokenScores {
  double logprob = 0;  // log_softmax of the row at the chosen token
  double entropy = 0;  // of softmax(row), in nats; tokens of probability 0 (-inf) add nothing
  double margin = 0;   // largest minus second-largest logit; +inf when the second is -inf or V == 1
};

// logits [B, V], chosen [B] int64 ids. Throws InputError for shapes or ids that do not fit.
std::vector<TokenScores> token_scores(const at::Tensor& logits, const at::Tensor& chosen);

}  // namespace glimpse::generate
