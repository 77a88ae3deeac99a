#include "core/weight_arena.h"

#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "glimpse/core/error.h"

namespace glimpse::core {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;
constexpr std::size_t kAlign = 64;

std::size_t round_up(std::size_t n, std::size_t to) {
  return (n + to - 1) / to * to;
}

}  // namespace

// One anonymous mapping, 2 MB aligned so that the kernel can back it with huge pages.
class WeightArena::Region {
 public:
  explicit Region(std::size_t bytes) : size_(round_up(bytes, kHugePage)) {
    // Over-map by one huge page and trim both ends to a 2 MB boundary.
    const std::size_t span = size_ + kHugePage;
    void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      throw Error("weights: cannot map " + std::to_string(span >> 20) +
                  " MB of memory: " + std::strerror(errno));
    }
    auto* raw = static_cast<std::uint8_t*>(p);
    const auto addr = reinterpret_cast<std::uintptr_t>(raw);
    auto* aligned = raw + (round_up(addr, kHugePage) - addr);
    if (aligned > raw) ::munmap(raw, static_cast<std::size_t>(aligned - raw));
    const std::size_t tail = static_cast<std::size_t>(raw + span - (aligned + size_));
    if (tail > 0) ::munmap(aligned + size_, tail);
    data_ = aligned;
    // A hint: without transparent huge pages (or with them disabled) the memory is plain.
    ::madvise(data_, size_, MADV_HUGEPAGE);
  }
  ~Region() { ::munmap(data_, size_); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;
  std::uint8_t* data_ = nullptr;
};

WeightArena::WeightArena(std::size_t chunk_bytes)
    : chunk_bytes_(round_up(std::max<std::size_t>(chunk_bytes, kHugePage), kHugePage)) {}

std::shared_ptr<WeightArena::Region> WeightArena::map(std::size_t bytes) {
  auto region = std::make_shared<Region>(bytes);
  mapped_bytes_ += region->size();
  return region;
}

at::Tensor WeightArena::empty(at::IntArrayRef shape, c10::ScalarType dtype) {
  const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  std::size_t bytes = c10::elementSize(dtype);
  for (const auto d : shape) bytes *= static_cast<std::size_t>(d);
  if (bytes == 0) return at::empty(shape, options);
  std::shared_ptr<Region> region;
  std::size_t offset = 0;
  if (bytes > chunk_bytes_ / 2) {
    region = map(bytes);
  } else {
    if (!chunk_ || chunk_used_ + bytes > chunk_->size()) {
      chunk_ = map(chunk_bytes_);
      chunk_used_ = 0;
    }
    region = chunk_;
    offset = chunk_used_;
    chunk_used_ = round_up(chunk_used_ + bytes, kAlign);
  }
  return at::from_blob(
      region->data() + offset, shape, [region](void*) {}, options);
}

at::Tensor WeightArena::copy(const at::Tensor& source, c10::ScalarType dtype) {
  at::Tensor out = empty(source.sizes(), dtype);
  out.copy_(source);
  return out;
}

}  // namespace glimpse::core
