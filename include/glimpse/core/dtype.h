#pragma once

// Element types of checkpoint tensors, spelled as the safetensors format spells them.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace glimpse::core {

enum class DType : std::uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

// "F32", "BF16", "BOOL", ...
std::string_view dtype_name(DType dtype);

// Bytes per element.
std::size_t dtype_size(DType dtype);

// The dtype for a safetensors name, or nothing for a name glimpse does not know.
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace glimpse::core
