#pragma once

// Shared between the files of src/bench (not installed).

#include <algorithm>
#include <chrono>
#include <vector>

#include "glimpse/bench/benchmark.h"
#include "glimpse/core/config.h"
#include "layers/decoder.h"

namespace glimpse::bench {

// The language model's DecoderConfig as the family's loader builds it.
layers::DecoderConfig text_decoder_config(const core::Config& config);

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The median of repeated timings (the mean of the middle two for an even count); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// BenchOptions::kv_decode on `inputs`; `weight_bytes`: the LLM weights one decode step reads.
KvDecodeTimings time_kv_decode(model::Model& m, const model::ForwardInputs& inputs,
                               const BenchOptions& o, std::int64_t weight_bytes);

}  // namespace glimpse::bench
