#pragma once

// The generation_config.json keys glimpse implements, with the defaults of transformers 4.50
// (generation/configuration_utils.py: GenerationConfig), and glimpse's sampling seed. The logits
// processors these keys turn on are built by make_logits_processors (logits_process.h).

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse::generate {

struct GenerationConfig {
  // Length. transformers counts max_length and min_length with the prompt, and min_new_tokens,
  // when set, replaces min_length (GenerationMixin._prepare_generated_length). max_new_tokens
  // replaces max_length there too; glimpse's is always set, so it stops at whichever comes first.
  std::int64_t max_new_tokens = 32;  // glimpse's default (transformers: unset, then max_length 20)
  std::int64_t max_length = 0;       // prompt + new tokens at most; 0: unset
  std::int64_t min_new_tokens = 0;   // eos is banned before this many new tokens; 0: unset
  std::int64_t min_length = 0;       // eos is banned while prompt + new tokens are fewer; 0: off

  // Sampling: the warpers apply only when do_sample.
  bool do_sample = false;
  double temperature = 1.0;  // 1: off
  std::int64_t top_k = 50;   // transformers' default, used only when sampling; 0: off
  double top_p = 1.0;        // 1: off
  double min_p = 0.0;        // 0: off (transformers: None)
  std::int64_t num_return_sequences = 1;
  // glimpse's own: sequence i samples with at::multinomial(softmax(processed scores), 1) from
  // at::make_generator<at::CPUGeneratorImpl>(seed + i) (generator.h: GenerateOptions::seeds).
  std::uint64_t seed = 0;

  // Processors that apply to greedy search too.
  double repetition_penalty = 1.0;        // 1: off
  std::int64_t no_repeat_ngram_size = 0;  // 0: off
  std::vector<std::vector<std::int64_t>> bad_words_ids;
  std::vector<std::int64_t> suppress_tokens;
  std::vector<std::int64_t> begin_suppress_tokens;
  std::int64_t forced_bos_token_id = -1;           // -1: none
  std::vector<std::int64_t> forced_eos_token_ids;  // key forced_eos_token_id: an id or a list
  bool remove_invalid_values = false;
  bool renormalize_logits = false;

  // Special tokens and stopping.
  std::vector<std::int64_t> eos_token_ids;  // key eos_token_id: an id or a list
  std::int64_t pad_token_id = -1;           // -1: none (rows that finished get the first eos id)
  std::int64_t bos_token_id = -1;           // -1: none
  std::vector<std::string> stop_strings;    // a string or a list in the file

  // Reads generation_config.json in `dir` when present; absent keys keep the defaults above,
  // unknown keys are ignored as transformers does. A key that changes results and that glimpse
  // does not implement (num_beams > 1, typical_p < 1, ...) is a ConfigError naming the key and
  // the file; so is a value of the wrong type.
  static GenerationConfig from_checkpoint(const std::string& dir);

  // Throws InputError naming the field when a value is out of range.
  void validate() const;

  // Where a sequence whose prompt has `prompt_length` tokens must end: prompt + max_new_tokens,
  // or max_length when that is set and smaller. ForcedEOSTokenLogitsProcessor counts from it.
  std::int64_t max_length_for(std::int64_t prompt_length) const;
};

}  // namespace glimpse::generate
