#include "layers/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"

namespace glimpse::layers {
namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Drops the whole pages of a tensor read from a file mapping from this process once it has been
// copied: the page cache keeps them, and peak RSS stays the resident copy instead of the copy
// plus the mapping. Nothing writes to the mapping, so a later read would just fault them back.
void release_mapped_pages(const at::Tensor& t) {
  static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  const std::uintptr_t first = (begin + page - 1) / page * page;
  const std::uintptr_t last = (begin + t.nbytes()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
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
  at::Tensor out;
  if (arena_) {
    const at::Tensor stored = core::load_tensor(checkpoint_, *actual);
    out = arena_->copy(stored, dtype);
    if (core::shares_mapping(stored, checkpoint_.file_of(*actual))) release_mapped_pages(stored);
  } else {
    out = core::load_tensor(checkpoint_, *actual, dtype);
  }
  bound_[name] = out;
  return out;
}

std::vector<std::string> WeightLoader::unused() const {
  std::vector<std::string> out;
  for (const auto& n : names_) {
    if (!used_.count(n)) out.push_back(n);
  }
  return out;
}

}  // namespace glimpse::layers
