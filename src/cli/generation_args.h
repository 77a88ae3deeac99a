#pragma once

// Generation flags shared by `generate` and `run`, applied over generation_config.json: every key
// glimpse implements can be set here; the checkpoint's values are the defaults.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/generate/generation_config.h"

namespace CLI {
class App;
}

namespace glimpse::cli {

struct GenerationArgs {
  std::int64_t max_new_tokens = 32;
  bool do_sample = false, greedy = false;
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<std::int64_t> top_k, no_repeat_ngram_size, min_new_tokens, num_return_sequences;
  std::vector<std::string> stop;
  std::uint64_t seed = 0;
};

// --max-new-tokens, --do-sample / --greedy, --temperature, --top-k, --top-p, --min-p,
// --repetition-penalty, --no-repeat-ngram-size, --min-new-tokens, --stop, --seed and, with
// `candidates`, --num-return-sequences.
void add_generation_options(CLI::App& cmd, GenerationArgs& args, bool candidates = false);

// generation_config.json of `model_dir` (eos, pad, sampling defaults, repetition penalty, ...)
// with the flags applied, validated. Throws ConfigError for a key glimpse cannot honour and
// InputError naming the flag for an out-of-range value.
generate::GenerationConfig generation_config(const std::string& model_dir,
                                             const GenerationArgs& args);

}  // namespace glimpse::cli
