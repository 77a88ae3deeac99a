#include "methods/feedback/candidates.h"

#include <ATen/ATen.h>

#include <chrono>

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
