#pragma once

// safetensors files: a validating header parser, a memory-mapped reader, sharded checkpoints and
// a writer. Torch-free; include "glimpse/core/tensor.h" to turn views into at::Tensor.
//
// Validation follows the reference implementation (huggingface/safetensors, safetensors/src/
// tensor.rs: SafeTensors::read_metadata and Metadata::validate): a bounded header length, a UTF-8
// JSON object, known dtypes, non-negative integer shapes without overflow, offsets that cover the
// data buffer contiguously from 0 without overlap, byte counts equal to dtype size times elements,
// and a string-to-string `__metadata__`.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "glimpse/core/dtype.h"

namespace glimpse::core {

// Largest header the reference accepts (safetensors MAX_HEADER_SIZE).
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data buffer (after the header)
  std::uint64_t end = 0;

  std::int64_t numel() const;
  std::uint64_t nbytes() const { return end - begin; }
};

// A read-only view of one tensor's bytes; valid while its file (or mapping) lives.
struct TensorView {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
  std::size_t nbytes = 0;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by data offset, as they lie in the file
  std::map<std::string, std::string> metadata;
  std::uint64_t data_offset = 0;  // 8 + header length
};

// Parses and validates the header of a whole file held in `bytes`. `source` names the file in
// error messages. Throws FormatError.
SafetensorsHeader parse_safetensors(const std::uint8_t* bytes, std::size_t size,
                                    const std::string& source);

class MappedFile;  // a read-only memory mapping, shared by the tensors that point into it

class SafetensorsFile {
 public:
  // Maps the file and validates it. Throws InputError (cannot open) or FormatError.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  const TensorInfo* find(std::string_view name) const;
  // Throws InputError naming the file and the tensor when it is absent.
  const TensorInfo& info(std::string_view name) const;
  TensorView view(std::string_view name) const;
  TensorView view(const TensorInfo& info) const;

  // The mapping that views point into; hold it to keep their data alive.
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }
  // First and one-past-last byte of the mapping, for checks that a tensor is zero-copy.
  const std::uint8_t* map_begin() const;
  const std::uint8_t* map_end() const;

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> mapping_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// A checkpoint: one safetensors file, or the shards named by model.safetensors.index.json.
class Checkpoint {
 public:
  // `path` is a folder (model.safetensors.index.json, else model.safetensors), an index file, or
  // a single .safetensors file.
  static Checkpoint open(const std::string& path);

  // Names in a stable order: shard by shard, by data offset within a shard.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  const SafetensorsFile& file_of(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;
  TensorView view(std::string_view name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t, std::less<>> owner_;  // tensor name -> index in files_
};

struct NamedView {
  std::string name;
  TensorView view;
};

// Writes tensors in the given order with 8-byte aligned data. Throws InputError on duplicate
// names or a view whose byte count does not match its shape, and Error when writing fails.
void write_safetensors(const std::string& path, const std::vector<NamedView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace glimpse::core
