#pragma once

// Anonymous memory for a model's weights, advised for transparent huge pages.
//
// Decode reads every weight once per token. Read from the checkpoint's file mapping (4 KB
// page-cache pages) it ran about a quarter slower on the development VM than from anonymous
// memory on 2 MB pages (docs/PERFORMANCE.md): under nested paging a TLB miss every 4 KB costs
// more than the read. The arena hands out 64-byte aligned blocks of large mappings; a tensor made
// here keeps its mapping alive.

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <memory>

namespace glimpse::core {

class WeightArena {
 public:
  // Mappings of `chunk_bytes` are shared by the tensors that fit; a tensor larger than half a
  // chunk gets a mapping of its own.
  explicit WeightArena(std::size_t chunk_bytes = std::size_t{256} << 20);

  // An uninitialised, contiguous tensor in the arena. Throws Error when memory runs out.
  at::Tensor empty(at::IntArrayRef shape, c10::ScalarType dtype);
  // A contiguous copy of `source` in the arena, converted to `dtype`.
  at::Tensor copy(const at::Tensor& source, c10::ScalarType dtype);

  // Bytes mapped so far (tensors plus the unused tail of each chunk).
  std::size_t mapped_bytes() const { return mapped_bytes_; }

 private:
  class Region;
  std::shared_ptr<Region> map(std::size_t bytes);

  std::size_t chunk_bytes_;
  std::shared_ptr<Region> chunk_;
  std::size_t chunk_used_ = 0;
  std::size_t mapped_bytes_ = 0;
};

}  // namespace glimpse::core
