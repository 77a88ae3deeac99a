// Follows transformers 4.50: generation/logits_process.py for each processor (class names kept),
// generation/utils.py GenerationMixin._get_logits_processor for which are built and their order.

#include "glimpse/generate/logits_process.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <limits>
#include <set>

#include "glimpse/core/error.h"

namespace glimpse::generate {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "] " + std::string(c10::toString(t.scalar_type()));
}

void check_inputs(const LogitsProcessor& p, const at::Tensor& input_ids, const at::Tensor& scores) {
  if (!scores.defined() || scores.dim() != 2 || !at::isFloatingType(scores.scalar_type())) {
    throw InputError(p.name() + ": scores: expected [batch, vocab] floating point, found " +
                     shape_of(scores));
  }
  if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.scalar_type() != at::kLong ||
      input_ids.size(0) != scores.size(0)) {
    throw InputError(p.name() + ": input_ids: expected [" + std::to_string(scores.size(0)) +
                     ", length] int64, found " + shape_of(input_ids));
  }
}

void check_in_vocab(const LogitsProcessor& p, const char* what, std::int64_t id,
                    std::int64_t vocab) {
  if (id < 0 || id >= vocab) {
    throw InputError(p.name() + ": " + what + ": token id " + std::to_string(id) +
                     " is outside the vocabulary of " + std::to_string(vocab));
  }
}

at::Tensor ids_on(const std::vector<std::int64_t>& ids, const at::Tensor& like) {
  return at::tensor(ids, at::TensorOptions().dtype(at::kLong)).to(like.device());
}

// torch.isin(torch.arange(V), ids): [V] bool; ids outside the vocabulary match nothing.
at::Tensor vocab_mask(const std::vector<std::int64_t>& ids, const at::Tensor& scores) {
  const auto vocab = at::arange(scores.size(1), scores.options().dtype(at::kLong));
  return at::isin(vocab, ids_on(ids, scores));
}

void check_id_argument(const char* what, std::int64_t id) {
  if (id < 0)
    throw InputError(std::string(what) + ": token ids must be >= 0, found " + std::to_string(id));
}

}  // namespace

LogitsProcessor::~LogitsProcessor() = default;

void LogitsProcessorList::add(std::unique_ptr<LogitsProcessor> processor) {
  if (!processor) throw InputError("LogitsProcessorList: processor is null");
  processors_.push_back(std::move(processor));
}

std::vector<std::string> LogitsProcessorList::names() const {
  std::vector<std::string> out;
  for (const auto& p : processors_) out.push_back(p->name());
  return out;
}

at::Tensor LogitsProcessorList::operator()(const at::Tensor& input_ids, at::Tensor scores) const {
  for (const auto& p : processors_) scores = (*p)(input_ids, std::move(scores));
  return scores;
}

LogitsProcessorList make_logits_processors(const GenerationConfig& config,
                                           std::int64_t prompt_length) {
  config.validate();
  if (prompt_length < 0) throw InputError("prompt_length: must be >= 0");
  const auto& c = config;
  const auto& eos = c.eos_token_ids;  // the reference's _eos_token_tensor (None when empty)
  LogitsProcessorList list;
  // _get_logits_processor, in its order (the processors glimpse refuses are left out).
  if (c.repetition_penalty != 1.0) {
    list.add(std::make_unique<RepetitionPenaltyLogitsProcessor>(c.repetition_penalty));
  }
  if (c.no_repeat_ngram_size > 0) {
    list.add(std::make_unique<NoRepeatNGramLogitsProcessor>(c.no_repeat_ngram_size));
  }
  if (!c.bad_words_ids.empty()) {
    list.add(std::make_unique<NoBadWordsLogitsProcessor>(c.bad_words_ids, eos));
  }
  // _prepare_generated_length: min_new_tokens, when set, replaces min_length by prompt + it.
  const std::int64_t min_length =
      c.min_new_tokens > 0 ? prompt_length + c.min_new_tokens : c.min_length;
  if (min_length > 0 && !eos.empty()) {
    list.add(std::make_unique<MinLengthLogitsProcessor>(min_length, eos));
  }
  if (c.min_new_tokens > 0 && !eos.empty()) {
    list.add(
        std::make_unique<MinNewTokensLengthLogitsProcessor>(prompt_length, c.min_new_tokens, eos));
  }
  if (c.forced_bos_token_id >= 0) {
    list.add(std::make_unique<ForcedBOSTokenLogitsProcessor>(c.forced_bos_token_id));
  }
  if (!c.forced_eos_token_ids.empty()) {
    list.add(std::make_unique<ForcedEOSTokenLogitsProcessor>(c.max_length_for(prompt_length),
                                                             c.forced_eos_token_ids));
  }
  if (c.remove_invalid_values) list.add(std::make_unique<InfNanRemoveLogitsProcessor>());
  if (!c.suppress_tokens.empty()) {
    list.add(std::make_unique<SuppressTokensLogitsProcessor>(c.suppress_tokens));
  }
  if (!c.begin_suppress_tokens.empty()) {
    // A forced bos after a one-token prompt moves the first free step one later.
    const std::int64_t begin_index =
        (prompt_length > 1 || c.forced_bos_token_id < 0) ? prompt_length : prompt_length + 1;
    list.add(std::make_unique<SuppressTokensAtBeginLogitsProcessor>(c.begin_suppress_tokens,
                                                                    begin_index));
  }
  // "Processors previously known as LogitsWarpers, only applied with sampling strategies";
  // min_tokens_to_keep is 1 outside beam search.
  if (c.do_sample) {
    if (c.temperature != 1.0) list.add(std::make_unique<TemperatureLogitsWarper>(c.temperature));
    if (c.top_k != 0) list.add(std::make_unique<TopKLogitsWarper>(c.top_k));
    if (c.top_p < 1.0) list.add(std::make_unique<TopPLogitsWarper>(c.top_p));
    // The reference adds MinPLogitsWarper whenever min_p is not None; min_p == 0 removes nothing.
    if (c.min_p > 0) list.add(std::make_unique<MinPLogitsWarper>(c.min_p));
  }
  // "LogitNormalization should always be the last logit processor, when present".
  if (c.renormalize_logits) list.add(std::make_unique<LogitNormalization>());
  return list;
}

// --- RepetitionPenaltyLogitsProcessor -----------------------------------------------------------

RepetitionPenaltyLogitsProcessor::RepetitionPenaltyLogitsProcessor(double penalty)
    : penalty_(penalty) {
  if (!(penalty > 0)) {
    throw InputError("repetition_penalty: must be > 0, found " + std::to_string(penalty));
  }
}

at::Tensor RepetitionPenaltyLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                        at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  if (input_ids.size(1) == 0) return scores;
  const auto ids = input_ids.to(scores.device());
  check_in_vocab(*this, "input_ids", ids.min().item<std::int64_t>(), scores.size(1));
  check_in_vocab(*this, "input_ids", ids.max().item<std::int64_t>(), scores.size(1));
  // gather / where / scatter: a repeated id writes the same value, so it is penalised once.
  at::Tensor score = scores.gather(1, ids);
  score = at::where(score < 0, score * penalty_, score / penalty_);
  return scores.scatter(1, ids, score);
}

// --- NoRepeatNGramLogitsProcessor ---------------------------------------------------------------

NoRepeatNGramLogitsProcessor::NoRepeatNGramLogitsProcessor(std::int64_t ngram_size)
    : ngram_size_(ngram_size) {
  if (ngram_size <= 0) {
    throw InputError("no_repeat_ngram_size: must be > 0, found " + std::to_string(ngram_size));
  }
}

at::Tensor NoRepeatNGramLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                    at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  const std::int64_t len = input_ids.size(1);
  const std::int64_t n = ngram_size_;
  // _calc_banned_ngram_tokens: nothing is banned before the row can end an n-gram.
  if (len + 1 < n) return scores;
  const at::Tensor ids = input_ids.to(at::kCPU).contiguous();
  const auto a = ids.accessor<std::int64_t, 2>();
  at::Tensor out = scores.clone();
  for (std::int64_t b = 0; b < ids.size(0); ++b) {
    // Every n-gram of the row whose first n - 1 tokens equal the row's last n - 1 tokens bans its
    // last token (_get_ngrams then _get_generated_ngrams).
    std::vector<std::int64_t> banned;
    for (std::int64_t start = 0; start + n <= len; ++start) {
      bool same = true;
      for (std::int64_t j = 0; j + 1 < n && same; ++j) {
        same = a[b][start + j] == a[b][len - n + 1 + j];
      }
      if (same) {
        const std::int64_t token = a[b][start + n - 1];
        check_in_vocab(*this, "input_ids", token, scores.size(1));
        banned.push_back(token);
      }
    }
    if (!banned.empty()) out.select(0, b).index_fill_(0, ids_on(banned, out), kNegInf);
  }
  return out;
}

// --- NoBadWordsLogitsProcessor ------------------------------------------------------------------

NoBadWordsLogitsProcessor::NoBadWordsLogitsProcessor(
    const std::vector<std::vector<std::int64_t>>& bad_words_ids,
    const std::vector<std::int64_t>& eos_token_ids) {
  if (bad_words_ids.empty()) throw InputError("bad_words_ids: must be a non-empty list");
  std::set<std::vector<std::int64_t>> seen;  // the reference keys a dict by the sequences
  for (const auto& words : bad_words_ids) {
    if (words.empty()) throw InputError("bad_words_ids: every entry must be a non-empty list");
    for (const auto id : words) check_id_argument("bad_words_ids", id);
    const bool lone_eos = words.size() == 1 && std::find(eos_token_ids.begin(), eos_token_ids.end(),
                                                         words[0]) != eos_token_ids.end();
    if (lone_eos || !seen.insert(words).second) continue;
    if (words.size() == 1) {
      single_.push_back(words[0]);
    } else {
      longer_.push_back(words);
    }
  }
}

at::Tensor NoBadWordsLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                 at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  const std::int64_t vocab = scores.size(1);
  for (const auto id : single_) check_in_vocab(*this, "bad_words_ids", id, vocab);
  for (const auto& words : longer_) {
    for (const auto id : words) check_in_vocab(*this, "bad_words_ids", id, vocab);
  }
  // SequenceBiasLogitsProcessor.__call__: a bias of -inf added to the scores.
  at::Tensor bias = at::zeros_like(scores);
  if (!single_.empty()) bias.index_fill_(1, ids_on(single_, bias), kNegInf);
  const std::int64_t len = input_ids.size(1);
  for (const auto& words : longer_) {
    // "the sequence is longer than the context, ignore" (the reference compares the whole length).
    const auto size = static_cast<std::int64_t>(words.size());
    if (size > len) continue;
    const std::vector<std::int64_t> prefix(words.begin(), words.end() - 1);
    const at::Tensor match =
        input_ids.narrow(1, len - (size - 1), size - 1).eq(ids_on(prefix, input_ids)).all(1);
    at::Tensor column = bias.select(1, words.back());
    column.add_(at::zeros_like(column).masked_fill_(match.to(column.device()), kNegInf));
  }
  return scores + bias;
}

// --- MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor --------------------------------

MinLengthLogitsProcessor::MinLengthLogitsProcessor(std::int64_t min_length,
                                                   std::vector<std::int64_t> eos_token_ids)
    : min_length_(min_length), eos_(std::move(eos_token_ids)) {
  if (min_length < 0) throw InputError("min_length: must be >= 0");
  for (const auto id : eos_) check_id_argument("eos_token_id", id);
}

at::Tensor MinLengthLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  if (input_ids.size(1) >= min_length_) return scores;
  return scores.masked_fill(vocab_mask(eos_, scores), kNegInf);
}

MinNewTokensLengthLogitsProcessor::MinNewTokensLengthLogitsProcessor(
    std::int64_t prompt_length_to_skip, std::int64_t min_new_tokens,
    std::vector<std::int64_t> eos_token_ids)
    : prompt_length_(prompt_length_to_skip),
      min_new_tokens_(min_new_tokens),
      eos_(std::move(eos_token_ids)) {
  if (prompt_length_to_skip < 0) throw InputError("prompt_length: must be >= 0");
  if (min_new_tokens < 0) throw InputError("min_new_tokens: must be >= 0");
  for (const auto id : eos_) check_id_argument("eos_token_id", id);
}

at::Tensor MinNewTokensLengthLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                         at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  if (input_ids.size(1) - prompt_length_ >= min_new_tokens_) return scores;
  return scores.masked_fill(vocab_mask(eos_, scores), kNegInf);
}

// --- ForcedBOSTokenLogitsProcessor, ForcedEOSTokenLogitsProcessor -------------------------------

ForcedBOSTokenLogitsProcessor::ForcedBOSTokenLogitsProcessor(std::int64_t bos_token_id)
    : bos_(bos_token_id) {
  check_id_argument("forced_bos_token_id", bos_token_id);
}

at::Tensor ForcedBOSTokenLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                     at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  if (input_ids.size(1) != 1) return scores;
  check_in_vocab(*this, "forced_bos_token_id", bos_, scores.size(1));
  at::Tensor out = at::full_like(scores, kNegInf);
  out.select(1, bos_).fill_(0);
  return out;
}

ForcedEOSTokenLogitsProcessor::ForcedEOSTokenLogitsProcessor(
    std::int64_t max_length, std::vector<std::int64_t> eos_token_ids)
    : max_length_(max_length), eos_(std::move(eos_token_ids)) {
  for (const auto id : eos_) check_id_argument("forced_eos_token_id", id);
}

at::Tensor ForcedEOSTokenLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                     at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  if (input_ids.size(1) != max_length_ - 1) return scores;
  for (const auto id : eos_) check_in_vocab(*this, "forced_eos_token_id", id, scores.size(1));
  at::Tensor out = at::full_like(scores, kNegInf);
  out.index_fill_(1, ids_on(eos_, out), 0);
  return out;
}

// --- InfNanRemoveLogitsProcessor ----------------------------------------------------------------

at::Tensor InfNanRemoveLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                   at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  // torch.finfo(scores.dtype).max and .min.
  double max = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "inf_nan", [&] {
    max = static_cast<double>(std::numeric_limits<scalar_t>::max());
  });
  const double inf = std::numeric_limits<double>::infinity();
  return scores.masked_fill(scores.isnan(), 0)
      .masked_fill(scores == inf, max)
      .masked_fill(scores == -inf, -max);
}

// --- SuppressTokensLogitsProcessor, SuppressTokensAtBeginLogitsProcessor ------------------------

SuppressTokensLogitsProcessor::SuppressTokensLogitsProcessor(
    std::vector<std::int64_t> suppress_tokens)
    : tokens_(std::move(suppress_tokens)) {}

at::Tensor SuppressTokensLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                     at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  return scores.masked_fill(vocab_mask(tokens_, scores), kNegInf);
}

SuppressTokensAtBeginLogitsProcessor::SuppressTokensAtBeginLogitsProcessor(
    std::vector<std::int64_t> begin_suppress_tokens, std::int64_t begin_index)
    : tokens_(std::move(begin_suppress_tokens)), begin_index_(begin_index) {}

at::Tensor SuppressTokensAtBeginLogitsProcessor::operator()(const at::Tensor& input_ids,
                                                            at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  if (input_ids.size(1) != begin_index_) return scores;
  return scores.masked_fill(vocab_mask(tokens_, scores), kNegInf);
}

// --- Warpers ------------------------------------------------------------------------------------

TemperatureLogitsWarper::TemperatureLogitsWarper(double temperature) : temperature_(temperature) {
  if (!(temperature > 0)) {
    throw InputError("temperature: must be > 0, found " + std::to_string(temperature));
  }
}

at::Tensor TemperatureLogitsWarper::operator()(const at::Tensor& input_ids,
                                               at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  return scores / temperature_;
}

TopKLogitsWarper::TopKLogitsWarper(std::int64_t top_k, std::int64_t min_tokens_to_keep)
    : top_k_(std::max(top_k, min_tokens_to_keep)) {
  if (top_k <= 0) throw InputError("top_k: must be > 0, found " + std::to_string(top_k));
}

at::Tensor TopKLogitsWarper::operator()(const at::Tensor& input_ids, at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  const std::int64_t k = std::min(top_k_, scores.size(1));  // "Safety check"
  if (k == 0) return scores;
  const at::Tensor kth = std::get<0>(at::topk(scores, k)).narrow(-1, k - 1, 1);
  return scores.masked_fill(scores < kth, kNegInf);
}

TopPLogitsWarper::TopPLogitsWarper(double top_p, std::int64_t min_tokens_to_keep)
    : top_p_(top_p), min_tokens_to_keep_(min_tokens_to_keep) {
  if (!(top_p > 0 && top_p <= 1)) {
    throw InputError("top_p: must be in (0, 1], found " + std::to_string(top_p));
  }
  if (min_tokens_to_keep < 1) throw InputError("min_tokens_to_keep: must be >= 1");
}

at::Tensor TopPLogitsWarper::operator()(const at::Tensor& input_ids, at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  auto [sorted, indices] = at::sort(scores, /*dim=*/-1, /*descending=*/false);
  const at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
  at::Tensor remove = cumulative <= (1 - top_p_);
  const std::int64_t keep = std::min(min_tokens_to_keep_, remove.size(1));
  remove.narrow(1, remove.size(1) - keep, keep).fill_(false);
  return scores.masked_fill(remove.scatter(1, indices, remove), kNegInf);
}

MinPLogitsWarper::MinPLogitsWarper(double min_p, std::int64_t min_tokens_to_keep)
    : min_p_(min_p), min_tokens_to_keep_(min_tokens_to_keep) {
  if (!(min_p >= 0 && min_p <= 1)) {
    throw InputError("min_p: must be in [0, 1], found " + std::to_string(min_p));
  }
  if (min_tokens_to_keep < 1) throw InputError("min_tokens_to_keep: must be >= 1");
}

at::Tensor MinPLogitsWarper::operator()(const at::Tensor& input_ids, at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  const at::Tensor probs = scores.softmax(-1);
  const at::Tensor top = std::get<0>(probs.max(-1, /*keepdim=*/true));
  const at::Tensor remove = probs < top * min_p_;
  const at::Tensor sorted_indices = at::argsort(scores, -1, /*descending=*/true);
  at::Tensor sorted_remove = remove.gather(-1, sorted_indices);
  sorted_remove.narrow(1, 0, std::min(min_tokens_to_keep_, sorted_remove.size(1))).fill_(false);
  return scores.masked_fill(sorted_remove.scatter(1, sorted_indices, sorted_remove), kNegInf);
}

at::Tensor LogitNormalization::operator()(const at::Tensor& input_ids, at::Tensor scores) const {
  check_inputs(*this, input_ids, scores);
  return scores.log_softmax(-1);
}

// --- token_scores -------------------------------------------------------------------------------

std::vector<TokenScores> token_scores(const at::Tensor& logits, const at::Tensor& chosen) {
  if (!logits.defined() || logits.dim() != 2 || logits.size(1) == 0 ||
      !at::isFloatingType(logits.scalar_type())) {
    throw InputError("token_scores: logits: expected [batch, vocab] floating point, found " +
                     shape_of(logits));
  }
  const std::int64_t b = logits.size(0), vocab = logits.size(1);
  if (!chosen.defined() || chosen.dim() != 1 || chosen.size(0) != b ||
      chosen.scalar_type() != at::kLong) {
    throw InputError("token_scores: chosen: expected [" + std::to_string(b) + "] int64, found " +
                     shape_of(chosen));
  }
  const at::Tensor rows = logits.detach().to(at::kCPU, at::kFloat);
  const at::Tensor ids = chosen.to(at::kCPU).contiguous();
  for (std::int64_t i = 0; i < b; ++i) {
    const auto id = ids[i].item<std::int64_t>();
    if (id < 0 || id >= vocab) {
      throw InputError("token_scores: chosen: token id " + std::to_string(id) +
                       " is outside the vocabulary of " + std::to_string(vocab));
    }
  }
  const at::Tensor logp = rows.log_softmax(-1);
  const at::Tensor p = logp.exp();
  // 0 * -inf is NaN in IEEE arithmetic; a token of probability 0 contributes 0 to the entropy.
  const at::Tensor entropy = -(p * logp).masked_fill(p == 0, 0).sum(-1);
  const at::Tensor chosen_logp = logp.gather(1, ids.view({b, 1})).view({b});
  at::Tensor margin;
  if (vocab >= 2) {
    const at::Tensor top2 = std::get<0>(at::topk(rows, 2));
    margin = top2.select(1, 0) - top2.select(1, 1);
  } else {
    margin = at::full({b}, std::numeric_limits<float>::infinity(), rows.options());
  }
  std::vector<TokenScores> out(static_cast<std::size_t>(b));
  for (std::int64_t i = 0; i < b; ++i) {
    out[i].logprob = chosen_logp[i].item<double>();
    out[i].entropy = entropy[i].item<double>();
    out[i].margin = margin[i].item<double>();
  }
  return out;
}

}  // namespace glimpse::generate
