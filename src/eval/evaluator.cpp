#include "glimpse/eval/evaluator.h"

#include <ATen/ATen.h>

#include <chrono>

#include "glimpse/core/error.h"
#include "glimpse/eval/scoring.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/pipeline.h"
#include "glimpse/text/tokenizer.h"
#include "glimpse/vision/image_io.h"

namespace glimpse::eval {

void Totals::add(const ItemResult& r) {
  ++items;
  correct += r.correct;
  latency_ms += r.latency_ms;
  prefill_flops += r.prefill_flops;
  kv_bytes += static_cast<double>(r.kv_bytes);
  prompt_tokens += static_cast<double>(r.prompt_tokens);
  auto& t = by_type[r.type];
  ++t.items;
  t.correct += r.correct;
}

void Totals::merge(const Totals& o) {
  items += o.items;
  correct += o.correct;
  latency_ms += o.latency_ms;
  prefill_flops += o.prefill_flops;
  kv_bytes += o.kv_bytes;
  prompt_tokens += o.prompt_tokens;
  for (const auto& [type, t] : o.by_type) {
    by_type[type].items += t.items;
    by_type[type].correct += t.correct;
  }
}

nlohmann::json Totals::to_json() const {
  const double n = items > 0 ? static_cast<double>(items) : 1.0;
  nlohmann::json by = nlohmann::json::object(), counts = nlohmann::json::object();
  for (const auto& [type, t] : by_type) {
    by[type] = t.items > 0 ? static_cast<double>(t.correct) / static_cast<double>(t.items) : 0.0;
    counts[type] = {t.correct, t.items};
  }
  return {{"items", items},
          {"accuracy", items > 0 ? static_cast<double>(correct) / n : 0.0},
          {"by_type", by},
          {"counts", counts},
          {"mean_latency_ms", latency_ms / n},
          {"mean_prefill_flops", prefill_flops / n},
          {"mean_kv_bytes", kv_bytes / n},
          {"mean_prompt_tokens", prompt_tokens / n}};
}

nlohmann::json Totals::sums() const {
  nlohmann::json by = nlohmann::json::object();
  for (const auto& [type, t] : by_type) by[type] = {t.correct, t.items};
  return {{"items", items},
          {"correct", correct},
          {"latency_ms", latency_ms},
          {"prefill_flops", prefill_flops},
          {"kv_bytes", kv_bytes},
          {"prompt_tokens", prompt_tokens},
          {"by_type", by}};
}

Totals Totals::from_sums(const nlohmann::json& j) {
  Totals t;
  try {
    t.items = j.at("items").get<std::int64_t>();
    t.correct = j.at("correct").get<std::int64_t>();
    t.latency_ms = j.at("latency_ms").get<double>();
    t.prefill_flops = j.at("prefill_flops").get<double>();
    t.kv_bytes = j.at("kv_bytes").get<double>();
    t.prompt_tokens = j.at("prompt_tokens").get<double>();
    for (const auto& [type, v] : j.at("by_type").items())
      t.by_type[type] = {v.at(1).get<std::int64_t>(), v.at(0).get<std::int64_t>()};
  } catch (const nlohmann::json::exception& e) {
    throw InputError(std::string("eval totals: malformed (") + e.what() + ")");
  }
  return t;
}

struct Evaluator::Impl {
  model::Model& model;
  const model::Processor& processor;
  EvalOptions options;
  pipeline::Pipeline methods;
};

Evaluator::Evaluator(model::Model& model, const model::Processor& processor, EvalOptions options)
    : impl_(new Impl{model, processor, std::move(options), {}}) {
  if (impl_->options.max_new_tokens < 1 || impl_->options.max_new_tokens > 4096)
    throw InputError("--max-new-tokens: expected 1..4096");
  if (!impl_->options.pipeline.empty())
    impl_->methods = pipeline::Pipeline::from_argument(impl_->options.pipeline);
  impl_->methods.bind(pipeline::MethodContext(model, &processor));
}

Evaluator::~Evaluator() = default;

ItemResult Evaluator::run(const Item& item) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Impl& m = *impl_;
  model::ProcessorRequest request;
  request.prompt = item.question;
  request.images.push_back(item.scene ? demo::render(*item.scene) : vision::load_image(item.image));
  const model::ProcessedInputs processed = m.processor.process(request);

  generate::Session session(m.model, m.methods.empty() ? nullptr : &m.methods);
  session.prefill(processed.inputs);
  ItemResult r;
  // Prefill FLOPs from the tokens each layer cached (a pruning method leaves fewer).
  const model::DecoderShape& shape = m.model.decoder_shape();
  for (std::int64_t i = 0; i < shape.num_layers; ++i) {
    const std::int64_t s = session.state().kv_lengths(i).max().item<std::int64_t>();
    r.prefill_flops += shape.layer_flops(s, s);
  }
  generate::GenerationConfig config;
  config.max_new_tokens = m.options.max_new_tokens;
  config.eos_token_ids = m.processor.eos_token_ids();
  const auto result = generate::Generator(session, config).run();
  const at::Tensor row = result.new_tokens[0].narrow(0, 0, result.lengths[0]).contiguous();
  const auto* p = row.data_ptr<std::int64_t>();
  text::DecodeOptions decode;
  decode.skip_special_tokens = true;
  r.prediction = m.processor.tokenizer().decode({p, p + row.numel()}, decode);
  const auto stats = session.stats();
  r.kv_bytes = stats.bytes_shared + stats.bytes_own;
  r.id = item.id;
  r.type = item.type;
  r.answer = item.answer;
  r.correct = is_correct(r.prediction, item.answer, item.options);
  r.prompt_tokens = processed.inputs.input_ids.numel();
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return r;
}

}  // namespace glimpse::eval
