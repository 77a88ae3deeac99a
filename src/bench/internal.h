#pragma once

// Shared between the files of src/bench (not installed).

#include "glimpse/core/config.h"
#include "layers/decoder.h"

namespace glimpse::bench {

// The language model's DecoderConfig as the family's loader builds it.
layers::DecoderConfig text_decoder_config(const core::Config& config);

}  // namespace glimpse::bench
