#include "glimpse/core/tensor.h"

#include <ATen/ATen.h>

#include "core/mapped_file.h"
#include "glimpse/core/error.h"

namespace glimpse::core {

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return at::kDouble;
    case DType::F32:
      return at::kFloat;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::I64:
      return at::kLong;
    case DType::I32:
      return at::kInt;
    case DType::I16:
      return at::kShort;
    case DType::I8:
      return at::kChar;
    case DType::U8:
      return at::kByte;
    case DType::Bool:
      return at::kBool;
  }
  throw UnsupportedError("unknown dtype");
}

DType from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return DType::F64;
    case at::kFloat:
      return DType::F32;
    case at::kHalf:
      return DType::F16;
    case at::kBFloat16:
      return DType::BF16;
    case at::kLong:
      return DType::I64;
    case at::kInt:
      return DType::I32;
    case at::kShort:
      return DType::I16;
    case at::kChar:
      return DType::I8;
    case at::kByte:
      return DType::U8;
    case at::kBool:
      return DType::Bool;
    default:
      throw UnsupportedError(std::string("tensor dtype ") + c10::toString(type) +
                             " cannot be stored in safetensors by glimpse");
  }
}

at::Tensor load_tensor(const SafetensorsFile& file, const std::string& name,
                       std::optional<c10::ScalarType> dtype) {
  const TensorView v = file.view(name);
  const auto stored = to_scalar_type(v.dtype);
  const auto options = at::TensorOptions().dtype(stored).device(at::kCPU);
  const bool aligned = reinterpret_cast<std::uintptr_t>(v.data) % dtype_size(v.dtype) == 0;
  at::Tensor t;
  if (v.nbytes == 0) {
    t = at::empty(v.shape, options);
  } else if (aligned) {
    // The deleter owns a reference to the mapping, so the tensor outlives the SafetensorsFile.
    auto keep = file.mapping();
    t = at::from_blob(
        const_cast<void*>(v.data), v.shape, [keep](void*) {}, options);
  } else {
    t = at::empty(v.shape, options);
    std::memcpy(t.data_ptr(), v.data, v.nbytes);
  }
  if (dtype && *dtype != stored) t = t.to(*dtype);
  return t;
}

at::Tensor load_tensor(const Checkpoint& checkpoint, const std::string& name,
                       std::optional<c10::ScalarType> dtype) {
  return load_tensor(checkpoint.file_of(name), name, dtype);
}

bool shares_mapping(const at::Tensor& tensor, const SafetensorsFile& file) {
  if (!tensor.defined() || tensor.numel() == 0) return false;
  const auto* p = static_cast<const std::uint8_t*>(tensor.data_ptr());
  return p >= file.map_begin() && p < file.map_end();
}

void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  std::vector<NamedView> views;
  keep.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw InputError(path + ": tensor '" + name + "' is undefined");
    keep.push_back(tensor.to(at::kCPU).contiguous());
    const at::Tensor& t = keep.back();
    TensorView v;
    v.dtype = from_scalar_type(t.scalar_type());
    v.shape = t.sizes().vec();
    v.data = t.data_ptr();
    v.nbytes = t.nbytes();
    views.push_back({name, std::move(v)});
  }
  write_safetensors(path, views, metadata);
}

}  // namespace glimpse::core
