#include "cli/generation_args.h"

#include <CLI/CLI.hpp>

namespace glimpse::cli {

void add_generation_options(CLI::App& cmd, GenerationArgs& args, bool candidates) {
  cmd.add_option("--max-new-tokens", args.max_new_tokens, "Tokens to generate at most")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  auto* sample = cmd.add_flag("--do-sample", args.do_sample,
                              "Sample (the checkpoint's generation_config.json decides otherwise)");
  cmd.add_flag("--greedy", args.greedy, "Greedy decoding whatever the checkpoint says")
      ->excludes(sample);
  cmd.add_option("--temperature", args.temperature, "Sampling temperature");
  cmd.add_option("--top-k", args.top_k, "Keep the k most likely tokens (0: off)");
  cmd.add_option("--top-p", args.top_p, "Nucleus sampling mass (1: off)");
  cmd.add_option("--min-p", args.min_p, "Drop tokens below min_p x the top probability (0: off)");
  cmd.add_option("--repetition-penalty", args.repetition_penalty,
                 "Penalty for tokens already in the sequence (1: off)");
  cmd.add_option("--no-repeat-ngram-size", args.no_repeat_ngram_size,
                 "Never repeat an n-gram of this size (0: off)");
  cmd.add_option("--min-new-tokens", args.min_new_tokens, "No end of sequence before this many");
  cmd.add_option("--stop", args.stop, "Stop when the answer ends with this text (repeatable)");
  cmd.add_option("--seed", args.seed, "Sampling seed (sequence i samples with seed + i)");
  if (candidates) {
    cmd.add_option("--num-return-sequences", args.num_return_sequences,
                   "Candidates decoded together after one prefill (needs sampling)");
  }
}

generate::GenerationConfig generation_config(const std::string& model_dir,
                                             const GenerationArgs& args) {
  auto config = generate::GenerationConfig::from_checkpoint(model_dir);
  config.max_new_tokens = args.max_new_tokens;
  if (args.do_sample) config.do_sample = true;
  if (args.greedy) config.do_sample = false;
  if (args.temperature) config.temperature = *args.temperature;
  if (args.top_k) config.top_k = *args.top_k;
  if (args.top_p) config.top_p = *args.top_p;
  if (args.min_p) config.min_p = *args.min_p;
  if (args.repetition_penalty) config.repetition_penalty = *args.repetition_penalty;
  if (args.no_repeat_ngram_size) config.no_repeat_ngram_size = *args.no_repeat_ngram_size;
  if (args.min_new_tokens) config.min_new_tokens = *args.min_new_tokens;
  if (args.num_return_sequences) config.num_return_sequences = *args.num_return_sequences;
  if (!args.stop.empty()) config.stop_strings = args.stop;
  config.seed = args.seed;
  config.validate();
  return config;
}

}  // namespace glimpse::cli
