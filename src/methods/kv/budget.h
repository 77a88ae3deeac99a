#pragma once

// How much of the prompt's KV cache a method keeps (issue 17; spec pruning_kv.md "Budget
// semantics"): exactly one of
//   "compression_ratio" r in [0, 1): the fraction of the prompt's entries removed, kvpress's knob
//     (kvpress scorer_press.py:ScorerPress.compress keeps int(T (1 - r)) per KV head);
//   "budget" C: entries kept per KV head and layer, the observation window included (SparseMM's
//     and KVCache-Factory's max_capacity_prompt).
// For the decode-time methods the same number is the size the cache is held at while decoding.

#include <cstdint>
#include <optional>
#include <string>

#include "glimpse/core/config.h"

namespace glimpse::methods::kv {

class KvBudget {
 public:
  // Reads the knob from `params` (`method` names the method in errors); a budget must exceed
  // `window` (the entries always kept) and be positive.
  static KvBudget parse(const core::Config& params, std::int64_t window);
  // Entries kept per head of a prompt of `prompt` tokens (window included); >= prompt: all.
  std::int64_t kept(std::int64_t prompt) const;
  bool is_ratio() const { return ratio_.has_value(); }
  double ratio() const { return ratio_.value_or(0.0); }
  std::int64_t budget() const { return budget_.value_or(0); }

 private:
  std::optional<double> ratio_;
  std::optional<std::int64_t> budget_;
};

}  // namespace glimpse::methods::kv
