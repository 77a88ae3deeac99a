#include "cli/generation_args.h"

#include <CLI/CLI.hpp>

namespace glimpse::cli {

void add_generation_options(CLI::App& cmd, GenerationArgs& args) {
  cmd.add_option("--max-new-tokens", args.max_new_tokens, "Tokens to generate at most")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  cmd.add_flag("--do-sample", args.do_sample, "Sample instead of greedy decoding");
  cmd.add_option("--temperature", args.temperature, "Sampling temperature");
  cmd.add_option("--top-k", args.top_k, "Keep the k most likely tokens (0: off)");
  cmd.add_option("--top-p", args.top_p, "Nucleus sampling mass (1: off)");
  cmd.add_option("--seed", args.seed, "Sampling seed");
}

generate::GenerationConfig generation_config(const std::string& model_dir,
                                             const GenerationArgs& args) {
  auto config = generate::GenerationConfig::from_checkpoint(model_dir);
  config.max_new_tokens = args.max_new_tokens;
  config.do_sample = args.do_sample;
  if (args.temperature) config.temperature = *args.temperature;
  if (args.top_k) config.top_k = *args.top_k;
  if (args.top_p) config.top_p = *args.top_p;
  config.seed = args.seed;
  config.validate();
  return config;
}

}  // namespace glimpse::cli
