#include "cli/cli_util.h"

#include <ATen/ATen.h>

#include <fstream>

#include "glimpse/core/error.h"

namespace glimpse::cli {

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  throw InputError("--dtype: expected f32 or bf16, found '" + name + "'");
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw InputError("cannot write '" + path + "'");
}

}  // namespace glimpse::cli
