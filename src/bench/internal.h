#pragma once

// Shared between the files of src/bench (not installed).

#include "glimpse/bench/benchmark.h"
#include "glimpse/core/config.h"
#include "layers/decoder.h"

namespace glimpse::bench {

// The language model's DecoderConfig as the family's loader builds it.
layers::DecoderConfig text_decoder_config(const core::Config& config);

// BenchOptions::kv_decode on `inputs`; `weight_bytes`: the LLM weights one decode step reads.
KvDecodeTimings time_kv_decode(model::Model& m, const model::ForwardInputs& inputs,
                               const BenchOptions& o, std::int64_t weight_bytes);

}  // namespace glimpse::bench
