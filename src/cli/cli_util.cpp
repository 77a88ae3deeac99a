#include "cli/cli_util.h"

#include <ATen/ATen.h>

#include <fstream>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/core/tensor.h"

namespace glimpse::cli {

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  throw InputError("--dtype: expected f32 or bf16, found '" + name + "'");
}

model::ForwardInputs read_forward_inputs(const std::string& path) {
  const auto file = core::SafetensorsFile::open(path);
  if (file.find("input_ids") == nullptr) throw InputError(path + ": missing tensor 'input_ids'");
  model::ForwardInputs in;
  const std::pair<const char*, at::Tensor*> slots[] = {
      {"input_ids", &in.input_ids},
      {"attention_mask", &in.attention_mask},
      {"pixel_values", &in.pixel_values},
      {"image_grid_thw", &in.image_grid_thw},
      {"pixel_values_videos", &in.pixel_values_videos},
      {"video_grid_thw", &in.video_grid_thw},
      {"second_per_grid_ts", &in.second_per_grid_ts},
  };
  for (const auto& t : file.tensors()) {
    bool known = false;
    for (const auto& [name, slot] : slots) {
      if (t.name == name) {
        *slot = core::load_tensor(file, t.name);
        known = true;
      }
    }
    // position_ids and rope_deltas are outputs of the reference processor; glimpse recomputes them.
    if (!known && t.name != "position_ids" && t.name != "rope_deltas") {
      GLIMPSE_LOG(Warn) << path << ": ignoring tensor '" << t.name << "'";
    }
  }
  return in;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw InputError("cannot write '" + path + "'");
}

}  // namespace glimpse::cli
