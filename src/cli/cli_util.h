#pragma once

// Helpers shared by the subcommands that run models.

#include <ATen/core/Tensor.h>

#include <string>

#include "glimpse/model/model.h"

namespace glimpse::cli {

// "f32" | "bf16" -> the compute dtype; InputError naming --dtype otherwise.
c10::ScalarType parse_dtype(const std::string& name);

// Writes `text` to `path`; InputError naming the file when it cannot.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace glimpse::cli
