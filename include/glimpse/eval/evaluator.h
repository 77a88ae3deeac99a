#pragma once

// glimpse eval's engine: each item of a data set through the processor, a Session with the
// pipeline's methods and greedy generation, scored (scoring.h) and costed: latency, prompt
// tokens, the language model's prefill FLOPs over the tokens each layer really kept, and the KV
// bytes held. Totals are sums, so that shards (plain processes or MPI ranks) add up to the
// totals of one process.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "glimpse/eval/dataset.h"

namespace glimpse::model {
class Model;
class Processor;
}  // namespace glimpse::model

namespace glimpse::eval {

struct EvalOptions {
  std::string pipeline;  // pipeline JSON (a file or the text); empty: the plain model
  std::int64_t max_new_tokens = 16;
};

struct ItemResult {
  std::string id, type, prediction, answer;
  bool correct = false;
  double latency_ms = 0;  // preprocessing, prefill and decode
  std::int64_t prompt_tokens = 0;
  double prefill_flops = 0;   // decoder layers only (DecoderShape::layer_flops per layer)
  std::int64_t kv_bytes = 0;  // held by the session after generation
};

struct TypeTotals {
  std::int64_t items = 0, correct = 0;
};

struct Totals {
  std::int64_t items = 0, correct = 0;
  double latency_ms = 0, prefill_flops = 0, kv_bytes = 0, prompt_tokens = 0;
  std::map<std::string, TypeTotals> by_type;

  void add(const ItemResult& r);
  void merge(const Totals& other);
  // {"items", "accuracy", "by_type": {type: accuracy}, "counts": {type: [correct, items]},
  //  "mean_latency_ms", "mean_prefill_flops", "mean_kv_bytes", "mean_prompt_tokens"}.
  nlohmann::json to_json() const;
  // The sums to_json() is made from, and back (what shards exchange).
  nlohmann::json sums() const;
  static Totals from_sums(const nlohmann::json& j);
};

class Evaluator {
 public:
  // `model` and `processor` (not owned) outlive the evaluator. Throws InputError for a bad
  // pipeline.
  Evaluator(model::Model& model, const model::Processor& processor, EvalOptions options);
  ~Evaluator();
  ItemResult run(const Item& item);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace glimpse::eval
