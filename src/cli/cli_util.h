#pragma once

// Helpers shared by the subcommands that run models.

#include <ATen/core/Tensor.h>

#include <string>

#include "glimpse/model/model.h"

namespace CLI {
class App;
}

namespace glimpse::cli {

// --dtype and --weights of the subcommands that load a model.
struct LoadArgs {
  std::string dtype = "f32";
  std::string weights = "resident";
};
void add_load_options(CLI::App& cmd, LoadArgs& args);
// The options the flags name; InputError naming the flag for an unknown value.
model::LoadOptions load_options(const LoadArgs& args);

// "f32" | "bf16" -> the compute dtype; InputError naming --dtype otherwise.
c10::ScalarType parse_dtype(const std::string& name);

// Writes `text` to `path`; InputError naming the file when it cannot.
void write_text_file(const std::string& path, const std::string& text);
// --kv-dump: the slots each layer's KV heads hold (DecodeState::kept_slots) as safetensors,
// `kept.{layer}` int64 [kv_heads, n] (batch 1) or [B, kv_heads, n], -1 padding on the left.
void write_kv_dump(const std::string& path, const model::DecodeState& state);

}  // namespace glimpse::cli
