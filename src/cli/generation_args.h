#pragma once

// Sampling flags shared by `generate` and `run`, applied over generation_config.json.

#include <cstdint>
#include <optional>
#include <string>

#include "glimpse/generate/generator.h"

namespace CLI {
class App;
}

namespace glimpse::cli {

struct GenerationArgs {
  std::int64_t max_new_tokens = 32;
  bool do_sample = false;
  std::optional<double> temperature, top_p;
  std::optional<std::int64_t> top_k;
  std::uint64_t seed = 0;
};

// --max-new-tokens, --do-sample, --temperature, --top-k, --top-p, --seed.
void add_generation_options(CLI::App& cmd, GenerationArgs& args);

// generation_config.json of `model_dir` (eos, pad, sampling defaults) with the flags applied.
// Greedy unless --do-sample, whatever the checkpoint suggests, so that runs are reproducible.
generate::GenerationConfig generation_config(const std::string& model_dir,
                                             const GenerationArgs& args);

}  // namespace glimpse::cli
