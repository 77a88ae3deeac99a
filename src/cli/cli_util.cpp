#include "cli/cli_util.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <fstream>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"

namespace glimpse::cli {

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  throw InputError("--dtype: expected f32 or bf16, found '" + name + "'");
}

void add_load_options(CLI::App& cmd, LoadArgs& args) {
  cmd.add_option("--dtype", args.dtype, "Compute dtype: f32 or bf16")->capture_default_str();
  cmd.add_option("--weights", args.weights,
                 "Weights in memory: resident (copied onto huge pages: slower load, faster "
                 "decode) or mapped (read in place from the files)")
      ->capture_default_str();
}

model::LoadOptions load_options(const LoadArgs& args) {
  model::LoadOptions o;
  o.dtype = parse_dtype(args.dtype);
  if (args.weights == "resident") {
    o.weights = model::WeightMemory::Resident;
  } else if (args.weights == "mapped") {
    o.weights = model::WeightMemory::Mapped;
  } else {
    throw InputError("--weights: expected resident or mapped, found '" + args.weights + "'");
  }
  return o;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw InputError("cannot write '" + path + "'");
}

void write_kv_dump(const std::string& path, const model::DecodeState& state) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (std::int64_t l = 0; state.cache && l < state.cache->num_layers(); ++l) {
    const at::Tensor kept = state.kept_slots(l);
    tensors.emplace_back("kept." + std::to_string(l), kept.size(0) == 1 ? kept[0] : kept);
  }
  core::save_tensors(path, tensors);
}

}  // namespace glimpse::cli
