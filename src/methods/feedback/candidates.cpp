#include "methods/feedback/candidates.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::methods::feedback {

namespace {

void collect(const generate::GenerationResult& result, const text::Tokenizer& tokenizer,
             CandidateRound& round) {
  text::DecodeOptions decode;
  decode.skip_special_tokens = true;
  for (std::int64_t i = 0; i < result.new_tokens.size(0); ++i) {
    const at::Tensor row = result.new_tokens[i].narrow(0, 0, result.lengths[i]).contiguous();
    const auto* p = row.data_ptr<std::int64_t>();
    Candidate c;
    c.ids.assign(p, p + row.numel());
    c.text = tokenizer.decode(c.ids, decode);
    c.mean_logprob = result.mean_logprob[i];
    round.decoded_tokens += result.lengths[i];
    round.candidates.push_back(std::move(c));
  }
  ++round.batches;
}

}  // namespace

void Sampling::read(const core::Config& params) {
  temperature = params.get_float("temperature", temperature);
  if (!(temperature > 0) || !std::isfinite(temperature))
    params.fail("temperature", "expected a finite value > 0 (the sampled candidates')");
  top_p = params.get_float("top_p", top_p);
  if (!(top_p > 0 && top_p <= 1)) params.fail("top_p", "expected a value in (0, 1]");
  top_k = params.get_int("top_k", top_k);
  if (top_k < 0) params.fail("top_k", "expected a count >= 0 (0: off)");
  if (params.has("seed")) {
    const std::int64_t s = params.get_int("seed");
    if (s < 0) params.fail("seed", "expected a value >= 0");
    seed = static_cast<std::uint64_t>(s);
  }
}

generate::GenerationConfig Sampling::applied(const generate::GenerationConfig& base) const {
  generate::GenerationConfig c = base;
  c.do_sample = true;
  c.temperature = temperature;
  c.top_p = top_p;
  c.top_k = top_k;
  if (seed) c.seed = *seed;
  return c;
}

void Sampling::write(nlohmann::json& report) const {
  report["temperature"] = temperature;
  report["top_p"] = top_p;
  report["top_k"] = top_k;
  if (seed) report["seed"] = *seed;
}

std::vector<std::string> read_letters(const core::Config& params,
                                      std::vector<std::string> fallback) {
  if (!params.has("letters")) return fallback;
  std::vector<std::string> letters = params.get_string_list("letters");
  if (letters.empty() || letters.size() > 26)
    params.fail("letters", "expected 1 to 26 option letters");
  for (const auto& l : letters) {
    if (l.size() != 1 || l[0] < 'A' || l[0] > 'Z')
      params.fail("letters", "expected single upper-case letters such as \"A\"");
  }
  return letters;
}

CandidateRound decode_candidates(generate::Session& prefix, std::int64_t n,
                                 const generate::GenerationConfig& first,
                                 const generate::GenerationConfig& rest,
                                 const text::Tokenizer& tokenizer) {
  if (n < 1) throw InputError("candidates: expected at least 1, got " + std::to_string(n));
  const auto t0 = std::chrono::steady_clock::now();
  CandidateRound round;
  std::vector<generate::Session> forks = prefix.fork(n);
  generate::GenerateOptions options;
  options.tokenizer = &tokenizer;
  {
    generate::Session origin = std::move(forks[0]);
    collect(generate::Generator(origin, first, options).run(), tokenizer, round);
  }
  if (n > 1) {
    std::vector<generate::Session> sampled(std::make_move_iterator(forks.begin() + 1),
                                           std::make_move_iterator(forks.end()));
    generate::Session batch = generate::Session::stack(std::move(sampled));
    for (std::int64_t i = 1; i < n; ++i)
      options.seeds.push_back(rest.seed + static_cast<std::uint64_t>(i));
    collect(generate::Generator(batch, rest, options).run(), tokenizer, round);
  }
  round.decode_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return round;
}

}  // namespace glimpse::methods::feedback
