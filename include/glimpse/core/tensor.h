#pragma once

// Bridges between safetensors views and at::Tensor. Loading is zero-copy when the stored dtype is
// the one asked for and the data is aligned for it: the tensor then points into the file mapping
// and keeps it alive.

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/core/safetensors.h"

namespace glimpse::core {

c10::ScalarType to_scalar_type(DType dtype);
// Throws UnsupportedError for scalar types safetensors files here cannot hold.
DType from_scalar_type(c10::ScalarType type);

// The named tensor of a file or checkpoint. With `dtype`, converts (copying) when it differs.
at::Tensor load_tensor(const SafetensorsFile& file, const std::string& name,
                       std::optional<c10::ScalarType> dtype = std::nullopt);
at::Tensor load_tensor(const Checkpoint& checkpoint, const std::string& name,
                       std::optional<c10::ScalarType> dtype = std::nullopt);

// True when `tensor` points into the memory mapping of `file` (was loaded without a copy).
bool shares_mapping(const at::Tensor& tensor, const SafetensorsFile& file);

// Writes CPU tensors (made contiguous first) with write_safetensors.
void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace glimpse::core
