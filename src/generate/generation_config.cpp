#include "glimpse/generate/generation_config.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"

namespace glimpse::generate {
namespace {

// Keys of transformers' GenerationConfig (4.50) that from_checkpoint reads.
constexpr const char* kHonouredKeys[] = {"max_new_tokens",
                                         "max_length",
                                         "min_new_tokens",
                                         "min_length",
                                         "do_sample",
                                         "temperature",
                                         "top_k",
                                         "top_p",
                                         "min_p",
                                         "num_return_sequences",
                                         "repetition_penalty",
                                         "no_repeat_ngram_size",
                                         "bad_words_ids",
                                         "suppress_tokens",
                                         "begin_suppress_tokens",
                                         "forced_bos_token_id",
                                         "forced_eos_token_id",
                                         "remove_invalid_values",
                                         "renormalize_logits",
                                         "eos_token_id",
                                         "pad_token_id",
                                         "bos_token_id",
                                         "stop_strings"};

// Keys that change nothing glimpse computes: bookkeeping, outputs, caching, beam-only knobs and
// assisted decoding (which, greedy, yields the main model's tokens).
constexpr const char* kIgnoredKeys[] = {"transformers_version",
                                        "_from_model_config",
                                        "use_cache",
                                        "cache_implementation",
                                        "cache_config",
                                        "return_legacy_cache",
                                        "low_memory",
                                        "length_penalty",
                                        "early_stopping",
                                        "output_attentions",
                                        "output_hidden_states",
                                        "output_scores",
                                        "output_logits",
                                        "return_dict_in_generate",
                                        "num_assistant_tokens",
                                        "num_assistant_tokens_schedule",
                                        "assistant_confidence_threshold",
                                        "prompt_lookup_num_tokens",
                                        "max_matching_ngram_size",
                                        "assistant_early_exit",
                                        "assistant_lookbehind",
                                        "target_lookbehind",
                                        "is_assistant",
                                        "decoder_start_token_id",
                                        "compile_config",
                                        "disable_compile",
                                        "generation_kwargs"};

// Keys that change results and that glimpse does not implement: refused when their value is not
// one that leaves transformers' output unchanged (the conditions of GenerationMixin's
// _get_generation_mode and _get_logits_processor).
struct RefusedKey {
  const char* key;
  const char* feature;
  bool (*in_use)(const core::Config& c, const char* key);  // called only when the key is not null
};

bool always(const core::Config&, const char*) {
  return true;
}
bool above_one(const core::Config& c, const char* k) {
  return c.get_float(k) > 1;
}
bool above_zero(const core::Config& c, const char* k) {
  return c.get_float(k) > 0;
}
bool below_one(const core::Config& c, const char* k) {
  return c.get_float(k) < 1;
}
bool not_one(const core::Config& c, const char* k) {
  return c.get_float(k) != 1;
}
bool is_true(const core::Config& c, const char* k) {
  return c.get_bool(k);
}

constexpr RefusedKey kRefusedKeys[] = {
    {"num_beams", "beam search", above_one},
    {"num_beam_groups", "group beam search", above_one},
    {"penalty_alpha", "contrastive search", above_zero},
    {"dola_layers", "DoLa decoding", always},
    {"guidance_scale", "classifier-free guidance", not_one},
    {"typical_p", "typical sampling (TypicalLogitsWarper)", below_one},
    {"epsilon_cutoff", "epsilon sampling (EpsilonLogitsWarper)", above_zero},
    {"eta_cutoff", "eta sampling (EtaLogitsWarper)", above_zero},
    {"diversity_penalty", "HammingDiversityLogitsProcessor", above_zero},
    {"encoder_repetition_penalty", "EncoderRepetitionPenaltyLogitsProcessor", not_one},
    {"encoder_no_repeat_ngram_size", "EncoderNoRepeatNGramLogitsProcessor", above_zero},
    {"exponential_decay_length_penalty", "ExponentialDecayLengthPenalty", always},
    {"sequence_bias", "SequenceBiasLogitsProcessor", always},
    {"watermarking_config", "watermarking", always},
    {"forced_decoder_ids", "forced_decoder_ids (transformers refuses it too)", always},
    {"force_words_ids", "constrained beam search", always},
    {"constraints", "constrained beam search", always},
    {"token_healing", "token healing", is_true},
    {"max_time", "a time limit (results would depend on speed)", always},
};

bool listed(const std::string& key) {
  const auto same = [&](const char* k) { return key == k; };
  return std::any_of(std::begin(kHonouredKeys), std::end(kHonouredKeys), same) ||
         std::any_of(std::begin(kIgnoredKeys), std::end(kIgnoredKeys), same) ||
         std::any_of(std::begin(kRefusedKeys), std::end(kRefusedKeys),
                     [&](const RefusedKey& r) { return key == r.key; });
}

// eos_token_id and forced_eos_token_id: an id or a list of ids.
std::vector<std::int64_t> id_or_list(const core::Config& c, const char* key) {
  if (!c.has(key)) return {};
  if (c.raw().at(key).is_array()) return c.get_int_list(key);
  return {c.get_int(key)};
}

std::vector<std::vector<std::int64_t>> list_of_id_lists(const core::Config& c, const char* key) {
  std::vector<std::vector<std::int64_t>> out;
  if (!c.has(key)) return out;
  const auto& v = c.raw().at(key);
  if (!v.is_array()) c.fail(key, "expected a list of lists of token ids");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_array()) c.fail(key, "element " + std::to_string(i) + ": expected a list of ids");
    std::vector<std::int64_t> ids;
    for (const auto& id : v[i]) {
      if (!id.is_number_integer()) {
        c.fail(key, "element " + std::to_string(i) + ": expected integer token ids");
      }
      ids.push_back(id.get<std::int64_t>());
    }
    out.push_back(std::move(ids));
  }
  return out;
}

void check_id(std::int64_t id, const char* field, bool minus_one_is_none) {
  if (id < 0 && !(minus_one_is_none && id == -1)) {
    throw InputError(std::string(field) + ": token ids must be >= 0" +
                     (minus_one_is_none ? " (or -1 for none)" : "") + ", found " +
                     std::to_string(id));
  }
}

void check_ids(const std::vector<std::int64_t>& ids, const char* field) {
  for (const auto id : ids) check_id(id, field, false);
}

}  // namespace

GenerationConfig GenerationConfig::from_checkpoint(const std::string& dir) {
  GenerationConfig g;
  const auto path = std::filesystem::path(dir) / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return g;
  const auto c = core::Config::load(path.string());

  for (const auto& r : kRefusedKeys) {
    if (c.has(r.key) && r.in_use(c, r.key)) {
      c.fail(r.key, std::string("glimpse does not implement ") + r.feature + " (found " +
                        c.raw().at(r.key).dump() + "); remove the key or set it to its default");
    }
  }
  for (const auto& key : c.keys()) {
    if (!listed(key)) {
      GLIMPSE_LOG(Debug) << path.string() << ": ignoring unknown key '" << key << "'";
    }
  }

  g.max_new_tokens = c.get_int("max_new_tokens", g.max_new_tokens);
  g.max_length = c.get_int("max_length", g.max_length);
  g.min_new_tokens = c.get_int("min_new_tokens", g.min_new_tokens);
  g.min_length = c.get_int("min_length", g.min_length);
  g.do_sample = c.get_bool("do_sample", g.do_sample);
  g.temperature = c.get_float("temperature", g.temperature);
  // "top_k": null is transformers' None: no TopKLogitsWarper, not the default 50.
  const bool top_k_null = c.raw().contains("top_k") && c.raw().at("top_k").is_null();
  g.top_k = top_k_null ? 0 : c.get_int("top_k", g.top_k);
  g.top_p = c.get_float("top_p", g.top_p);
  g.min_p = c.get_float("min_p", g.min_p);
  g.num_return_sequences = c.get_int("num_return_sequences", g.num_return_sequences);
  g.repetition_penalty = c.get_float("repetition_penalty", g.repetition_penalty);
  g.no_repeat_ngram_size = c.get_int("no_repeat_ngram_size", g.no_repeat_ngram_size);
  g.bad_words_ids = list_of_id_lists(c, "bad_words_ids");
  g.suppress_tokens = c.get_int_list("suppress_tokens", {});
  g.begin_suppress_tokens = c.get_int_list("begin_suppress_tokens", {});
  g.forced_bos_token_id = c.get_int("forced_bos_token_id", -1);
  g.forced_eos_token_ids = id_or_list(c, "forced_eos_token_id");
  g.remove_invalid_values = c.get_bool("remove_invalid_values", false);
  g.renormalize_logits = c.get_bool("renormalize_logits", false);
  g.eos_token_ids = id_or_list(c, "eos_token_id");
  g.pad_token_id = c.get_int("pad_token_id", -1);
  g.bos_token_id = c.get_int("bos_token_id", -1);
  if (c.has("stop_strings")) {
    g.stop_strings = c.raw().at("stop_strings").is_string()
                         ? std::vector<std::string>{c.get_string("stop_strings")}
                         : c.get_string_list("stop_strings");
  }
  return g;
}

void GenerationConfig::validate() const {
  const auto fail = [](const char* field, const std::string& what) {
    throw InputError(std::string(field) + ": " + what);
  };
  if (max_new_tokens < 0) fail("max_new_tokens", "must be >= 0");
  if (max_length < 0) fail("max_length", "must be >= 0 (0: unset)");
  if (min_new_tokens < 0) fail("min_new_tokens", "must be >= 0");
  if (min_length < 0) fail("min_length", "must be >= 0");
  // TemperatureLogitsWarper: "has to be a strictly positive float"; greedy search ignores it.
  if (do_sample && !(temperature > 0)) fail("temperature", "must be > 0 when sampling");
  if (top_k < 0) fail("top_k", "must be >= 0 (0: off)");
  if (!(top_p > 0 && top_p <= 1)) fail("top_p", "must be in (0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) fail("min_p", "must be in [0, 1] (0: off)");
  if (!(repetition_penalty > 0)) fail("repetition_penalty", "must be > 0 (1: off)");
  if (no_repeat_ngram_size < 0) fail("no_repeat_ngram_size", "must be >= 0 (0: off)");
  if (num_return_sequences < 1) fail("num_return_sequences", "must be >= 1");
  // GenerationConfig.validate: greedy methods without beam search support only one sequence.
  if (num_return_sequences > 1 && !do_sample) {
    fail("num_return_sequences", "must be 1 without do_sample (greedy search gives one sequence)");
  }
  for (const auto& words : bad_words_ids) {
    if (words.empty()) fail("bad_words_ids", "every entry must be a non-empty list of token ids");
    check_ids(words, "bad_words_ids");
  }
  check_ids(suppress_tokens, "suppress_tokens");
  check_ids(begin_suppress_tokens, "begin_suppress_tokens");
  check_ids(forced_eos_token_ids, "forced_eos_token_id");
  check_ids(eos_token_ids, "eos_token_id");
  check_id(forced_bos_token_id, "forced_bos_token_id", true);
  check_id(pad_token_id, "pad_token_id", true);
  check_id(bos_token_id, "bos_token_id", true);
}

std::int64_t GenerationConfig::max_length_for(std::int64_t prompt_length) const {
  const std::int64_t by_new_tokens = prompt_length + max_new_tokens;
  return max_length > 0 ? std::min(max_length, by_new_tokens) : by_new_tokens;
}

}  // namespace glimpse::generate
