#include "layers/weights.h"

#include <algorithm>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"

namespace glimpse::layers {
namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

WeightLoader::WeightLoader(core::Checkpoint checkpoint, c10::ScalarType dtype, bool resident,
                           std::vector<std::pair<std::string, std::string>> aliases)
    : checkpoint_(std::move(checkpoint)),
      dtype_(dtype),
      arena_(resident ? std::make_unique<core::WeightArena>() : nullptr),
      aliases_(std::move(aliases)),
      names_(checkpoint_.names()) {
  std::sort(names_.begin(), names_.end());
}

const std::string* WeightLoader::resolve(const std::string& name) const {
  auto find = [this](const std::string& n) -> const std::string* {
    const auto it = std::lower_bound(names_.begin(), names_.end(), n);
    return it != names_.end() && *it == n ? &*it : nullptr;
  };
  if (const auto* n = find(name)) return n;
  for (const auto& [prefix, replacement] : aliases_) {
    if (name.compare(0, prefix.size(), prefix) == 0) {
      if (const auto* n = find(replacement + name.substr(prefix.size()))) return n;
    }
  }
  return nullptr;
}

bool WeightLoader::has(const std::string& name) const {
  return resolve(name) != nullptr;
}

at::Tensor WeightLoader::get(const std::string& name, at::IntArrayRef shape) {
  return get_as(name, dtype_, shape);
}

at::Tensor WeightLoader::get_as(const std::string& name, c10::ScalarType dtype,
                                at::IntArrayRef shape) {
  const std::string* actual = resolve(name);
  if (actual == nullptr) {
    throw FormatError(checkpoint_.path() + ": missing tensor '" + name + "'");
  }
  const auto& info = checkpoint_.info(*actual);
  if (!shape.empty() && at::IntArrayRef(info.shape) != shape) {
    throw FormatError(checkpoint_.path() + ": tensor '" + *actual + "' has shape " +
                      shape_str(info.shape) + ", expected " + shape_str(shape) +
                      " from config.json");
  }
  const at::ScalarType stored = core::to_scalar_type(info.dtype);
  if (!at::isFloatingType(stored)) {
    throw FormatError(checkpoint_.path() + ": tensor '" + *actual + "' has dtype " +
                      std::string(core::dtype_name(info.dtype)) + ", expected a float dtype");
  }
  used_.insert(*actual);
  // Resident: one pass from the mapping (zero-copy view in the stored dtype) into the arena,
  // converting on the way.
  if (arena_) return arena_->copy(core::load_tensor(checkpoint_, *actual), dtype);
  return core::load_tensor(checkpoint_, *actual, dtype);
}

std::vector<std::string> WeightLoader::unused() const {
  std::vector<std::string> out;
  for (const auto& n : names_) {
    if (!used_.count(n)) out.push_back(n);
  }
  return out;
}

}  // namespace glimpse::layers
