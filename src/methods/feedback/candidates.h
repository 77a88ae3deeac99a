#pragma once

// Best-of-N candidates over a prefilled Session, as the round-level loops draw them (CyberV's
// origin + CoT samples, self-consistency): candidate 0 decodes with the run's own settings,
// candidates 1..n-1 sample, all of them forks that read the prompt's KV prefix in place (no
// re-prefill; the official loops prefill once per candidate), the sampled ones in one batch.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/core/config.h"
#include "glimpse/generate/generation_config.h"

#include <nlohmann/json_fwd.hpp>

namespace glimpse::generate {
class Session;
}
namespace glimpse::text {
class Tokenizer;
}

namespace glimpse::methods::feedback {

struct Candidate {
  std::vector<std::int64_t> ids;  // new tokens, eos included when emitted
  std::string text;               // decoded without special tokens
  double mean_logprob = 0;
};

struct CandidateRound {
  std::vector<Candidate> candidates;
  std::int64_t decoded_tokens = 0;  // tokens chosen over every candidate
  std::int64_t batches = 0;         // batched decodes run
  double decode_ms = 0;
};

// How the candidates after the first sample: a controller's "temperature", "top_p", "top_k" and
// "seed" (unset: the run's).
struct Sampling {
  double temperature = 1.0, top_p = 1.0;
  std::int64_t top_k = 50;
  std::optional<std::uint64_t> seed;
  // Reads the keys `params` has over these values; ConfigError naming a key out of range.
  void read(const core::Config& params);
  // `base` sampling with these settings.
  generate::GenerationConfig applied(const generate::GenerationConfig& base) const;
  void write(nlohmann::json& report) const;
};

// A controller's "letters" (single upper-case letters, at most 26), else `fallback`.
std::vector<std::string> read_letters(const core::Config& params,
                                      std::vector<std::string> fallback);

// `n` >= 1 candidates continuing `prefix` (batch 1, left open): candidate 0 with `first`,
// candidate i >= 1 with `rest` and the sampling seed rest.seed + i (reproducible whatever n).
CandidateRound decode_candidates(generate::Session& prefix, std::int64_t n,
                                 const generate::GenerationConfig& first,
                                 const generate::GenerationConfig& rest,
                                 const text::Tokenizer& tokenizer);

}  // namespace glimpse::methods::feedback
