#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace glimpse::core {

// A whole file mapped copy-on-write: reads come from the page cache, and an in-place write to a
// loaded tensor changes a private copy of the page instead of faulting. Tensors loaded
// zero-copy hold a shared_ptr to it.
class MappedFile {
 public:
  // Throws InputError when the path is missing, not a regular file, or cannot be mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace glimpse::core
