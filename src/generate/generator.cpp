#include "glimpse/generate/generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <filesystem>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"

namespace glimpse::generate {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper in the reference's order.
at::Tensor warp(at::Tensor logits, const GenerationConfig& c) {
  logits = logits.to(at::kFloat);
  if (c.temperature != 1.0) logits = logits / c.temperature;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (c.top_k > 0 && c.top_k < logits.size(-1)) {
    const at::Tensor kth = std::get<0>(at::topk(logits, c.top_k, -1)).narrow(-1, c.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (c.top_p < 1.0) {
    // Sort ascending, drop the head whose cumulative probability is <= 1 - top_p, keep >= 1 token.
    auto [sorted, idx] = at::sort(logits, -1, /*descending=*/false);
    const at::Tensor cum = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove = cum <= (1.0 - c.top_p);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);
    logits = logits.masked_fill(remove.scatter(-1, idx, remove), neg_inf);
  }
  return logits;
}

}  // namespace

GenerationConfig GenerationConfig::from_checkpoint(const std::string& dir) {
  GenerationConfig g;
  const auto path = std::filesystem::path(dir) / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return g;
  const auto c = core::Config::load(path.string());
  if (c.has("eos_token_id")) {
    const auto& v = c.raw().at("eos_token_id");
    g.eos_token_ids = v.is_array() ? c.get_int_list("eos_token_id")
                                   : std::vector<std::int64_t>{c.get_int("eos_token_id")};
  }
  g.pad_token_id = c.get_int("pad_token_id", -1);
  g.do_sample = c.get_bool("do_sample", false);
  g.temperature = c.get_float("temperature", 1.0);
  g.top_k = c.get_int("top_k", 0);
  g.top_p = c.get_float("top_p", 1.0);
  return g;
}

void GenerationConfig::validate() const {
  if (max_new_tokens < 0) throw InputError("max_new_tokens: must be >= 0");
  if (do_sample) {
    if (!(temperature > 0)) throw InputError("temperature: must be > 0 when sampling");
    if (top_k < 0) throw InputError("top_k: must be >= 0");
    if (!(top_p > 0 && top_p <= 1)) throw InputError("top_p: must be in (0, 1]");
  }
}

GenerationResult generate(model::Model& model, const model::ForwardInputs& inputs,
                          const GenerationConfig& config, const StreamCallback& on_step) {
  config.validate();
  if (!inputs.input_ids.defined() || inputs.input_ids.dim() != 2) {
    throw InputError("input_ids: expected [batch, sequence]");
  }
  const std::int64_t b = inputs.input_ids.size(0);
  const std::int64_t pad = config.pad_token_id >= 0
                               ? config.pad_token_id
                               : (config.eos_token_ids.empty() ? 0 : config.eos_token_ids[0]);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  const auto i64 = at::TensorOptions().dtype(at::kLong);

  GenerationResult result;
  result.prefill_tokens = inputs.input_ids.numel();
  model::DecodeState state = model.new_state(b);
  model::ForwardOptions options;
  options.last_logits_only = true;
  options.hooks = config.hooks;
  at::Tensor unfinished = at::ones({b}, at::TensorOptions().dtype(at::kBool));
  std::vector<at::Tensor> chosen;
  model::ForwardInputs step = inputs;
  const auto t0 = std::chrono::steady_clock::now();
  auto t_decode = t0;
  for (std::int64_t i = 0; i < config.max_new_tokens; ++i) {
    const at::Tensor logits = model.forward_cached(step, options, state).logits.select(1, 0);
    if (i == 0) {
      result.prefill_ms = ms_since(t0);
      t_decode = std::chrono::steady_clock::now();
    }
    if (config.keep_step_logits) result.step_logits.push_back(logits.to(at::kFloat));
    at::Tensor next;
    if (config.do_sample) {
      const at::Tensor probs = warp(logits, config).softmax(-1);
      next = at::multinomial(probs, 1, false, gen).squeeze(1);
    } else {
      next = logits.argmax(-1);
    }
    next = at::where(unfinished, next, at::full({b}, pad, i64));
    chosen.push_back(next);
    for (const auto eos : config.eos_token_ids) unfinished = unfinished.logical_and(next.ne(eos));
    const bool keep_going = !on_step || on_step(i, next);
    if (!keep_going || !unfinished.any().item<bool>()) break;
    step = model::ForwardInputs{};
    step.input_ids = next.view({b, 1});
    step.attention_mask = at::ones({b, 1}, i64);
  }
  if (!chosen.empty()) result.decode_ms = ms_since(t_decode);
  result.new_tokens = chosen.empty() ? at::empty({b, 0}, i64) : at::stack(chosen, 1);
  result.sequences = at::cat({inputs.input_ids.to(at::kLong), result.new_tokens}, 1);
  return result;
}

}  // namespace glimpse::generate
