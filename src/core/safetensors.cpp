#include "glimpse/core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/json_util.h"
#include "core/mapped_file.h"
#include "glimpse/core/error.h"

namespace glimpse::core {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kLengthBytes = 8;

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw FormatError(source + ": " + what);
}

// A non-negative integer that fits in uint64, or an error naming `what`.
std::uint64_t as_u64(const json& v, const std::string& source, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    fail(source, what + ": expected a non-negative integer, found " + v.dump());
  }
  fail(source, what + ": expected a non-negative integer, found " + json_type_name(v));
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry,
                              const std::string& source) {
  const std::string where = "tensor '" + name + "'";
  if (!entry.is_object()) {
    fail(source, where + ": expected an object, found " + json_type_name(entry));
  }
  TensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) fail(source, where + ": missing key 'dtype'");
  if (!dtype_it->is_string()) {
    fail(source, where + ": 'dtype' must be a string, found " + json_type_name(*dtype_it));
  }
  const auto dtype = dtype_from_name(dtype_it->get_ref<const std::string&>());
  if (!dtype) {
    fail(source, where + ": unknown dtype " + dtype_it->dump() +
                     " (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  }
  info.dtype = *dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) fail(source, where + ": missing key 'shape'");
  if (!shape_it->is_array()) {
    fail(source, where + ": 'shape' must be an array, found " + json_type_name(*shape_it));
  }
  std::uint64_t elements = 1;
  for (std::size_t i = 0; i < shape_it->size(); ++i) {
    const std::string dim_name = where + ": shape[" + std::to_string(i) + "]";
    const std::uint64_t dim = as_u64((*shape_it)[i], source, dim_name);
    if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(source, dim_name + " = " + std::to_string(dim) + " is too large");
    }
    if (__builtin_mul_overflow(elements, dim, &elements)) {
      fail(source, where + ": the number of elements overflows 64 bits");
    }
    info.shape.push_back(static_cast<std::int64_t>(dim));
  }

  const auto off_it = entry.find("data_offsets");
  if (off_it == entry.end()) fail(source, where + ": missing key 'data_offsets'");
  if (!off_it->is_array() || off_it->size() != 2) {
    fail(source, where + ": 'data_offsets' must be an array [begin, end], found " +
                     off_it->dump().substr(0, 80));
  }
  info.begin = as_u64((*off_it)[0], source, where + ": data_offsets[0]");
  info.end = as_u64((*off_it)[1], source, where + ": data_offsets[1]");
  if (info.end < info.begin) {
    fail(source, where + ": data_offsets [" + std::to_string(info.begin) + ", " +
                     std::to_string(info.end) + "] end before begin");
  }
  std::uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(elements, dtype_size(info.dtype), &expected_bytes)) {
    fail(source, where + ": the byte count overflows 64 bits");
  }
  if (info.nbytes() != expected_bytes) {
    fail(source, where + ": data_offsets span " + std::to_string(info.nbytes()) +
                     " bytes, expected " + std::to_string(expected_bytes) + " (" +
                     std::to_string(elements) + " x " + std::string(dtype_name(info.dtype)) + ")");
  }
  return info;
}

}  // namespace

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors(const std::uint8_t* bytes, std::size_t size,
                                    const std::string& source) {
  if (size < kLengthBytes) {
    fail(source, "file is " + std::to_string(size) +
                     " bytes, too small for the 8-byte safetensors header length");
  }
  const std::uint64_t n = read_u64_le(bytes);
  if (n > kMaxSafetensorsHeaderBytes) {
    fail(source, "header length " + std::to_string(n) + " exceeds the limit of " +
                     std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  }
  if (n > size - kLengthBytes) {
    fail(source, "header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(size) + " bytes)");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes + kLengthBytes), n);
  if (const auto bad = first_invalid_utf8(text)) {
    fail(source, "header is not valid UTF-8 (byte " + std::to_string(*bad) + ")");
  }
  if (text.empty() || text.front() != '{') {
    fail(source, "header must start with '{' (a JSON object)");
  }
  const json root = parse_json_strict(text, source + ": header");
  if (!root.is_object()) fail(source, "header must be a JSON object");

  SafetensorsHeader header;
  header.data_offset = kLengthBytes + n;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) {
        fail(source, "'__metadata__' must be an object of strings, found " + json_type_name(value));
      }
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          fail(source,
               "'__metadata__' key '" + mk + "' must be a string, found " + json_type_name(mv));
        }
        header.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    header.tensors.push_back(parse_tensor_entry(key, value, source));
  }

  // Metadata::validate: sorted by offsets, each tensor must start where the previous one ended.
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  std::uint64_t cursor = 0;
  for (const auto& t : header.tensors) {
    if (t.begin != cursor) {
      fail(source, "tensor '" + t.name + "': data_offsets begin at " + std::to_string(t.begin) +
                       ", expected " + std::to_string(cursor) +
                       (t.begin < cursor ? " (overlaps the previous tensor)"
                                         : " (gap after the previous tensor)"));
    }
    cursor = t.end;
  }
  const std::uint64_t data_bytes = size - header.data_offset;
  if (cursor != data_bytes) {
    fail(source, "tensors cover " + std::to_string(cursor) + " bytes of data, but the file has " +
                     std::to_string(data_bytes) + " bytes after the header");
  }
  return header;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile file;
  file.path_ = path;
  auto mapping = std::make_shared<MappedFile>(path);
  file.header_ = parse_safetensors(mapping->data(), mapping->size(), path);
  file.mapping_ = std::move(mapping);
  for (std::size_t i = 0; i < file.header_.tensors.size(); ++i) {
    file.index_.emplace(file.header_.tensors[i].name, i);
  }
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw InputError(path_ + ": no tensor named '" + std::string(name) + "'");
}

TensorView SafetensorsFile::view(std::string_view name) const {
  return view(info(name));
}

TensorView SafetensorsFile::view(const TensorInfo& t) const {
  TensorView v;
  v.dtype = t.dtype;
  v.shape = t.shape;
  v.data = mapping_->data() + header_.data_offset + t.begin;
  v.nbytes = static_cast<std::size_t>(t.nbytes());
  return v;
}

const std::uint8_t* SafetensorsFile::map_begin() const {
  return mapping_->data();
}

const std::uint8_t* SafetensorsFile::map_end() const {
  return mapping_->data() + mapping_->size();
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

// A shard name from an index must be a plain file name inside the checkpoint folder.
void check_shard_name(const std::string& shard, const std::string& index_path) {
  const fs::path p(shard);
  if (shard.empty() || p.has_parent_path() || p.is_absolute() || shard == "." || shard == "..") {
    throw FormatError(index_path + ": weight_map names shard '" + shard +
                      "', expected a file name in the same folder");
  }
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ckpt;
  ckpt.path_ = path;
  std::error_code ec;
  fs::path index_path;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / kIndexName, ec)) {
      index_path = fs::path(path) / kIndexName;
    } else if (fs::exists(fs::path(path) / "model.safetensors", ec)) {
      ckpt.files_.push_back(SafetensorsFile::open((fs::path(path) / "model.safetensors").string()));
    } else {
      throw InputError(path + ": no " + kIndexName + " or model.safetensors in this folder");
    }
  } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    index_path = path;
  } else {
    ckpt.files_.push_back(SafetensorsFile::open(path));
  }

  if (!index_path.empty()) {
    const std::string ip = index_path.string();
    const json index = read_json_file(ip);
    if (!index.is_object()) throw FormatError(ip + ": expected a JSON object");
    const auto wm = index.find("weight_map");
    if (wm == index.end()) throw FormatError(ip + ": missing key 'weight_map'");
    if (!wm->is_object()) {
      throw FormatError(ip + ": 'weight_map' must be an object, found " + json_type_name(*wm));
    }
    std::map<std::string, std::size_t> shard_index;
    std::vector<std::pair<std::string, std::string>> wanted;  // tensor, shard
    for (const auto& [tensor, shard] : wm->items()) {
      if (!shard.is_string()) {
        throw FormatError(ip + ": weight_map['" + tensor + "'] must be a string, found " +
                          json_type_name(shard));
      }
      const auto& shard_name = shard.get_ref<const std::string&>();
      check_shard_name(shard_name, ip);
      if (shard_index.find(shard_name) == shard_index.end()) {
        shard_index.emplace(shard_name, ckpt.files_.size());
        ckpt.files_.push_back(
            SafetensorsFile::open((index_path.parent_path() / shard_name).string()));
      }
      wanted.emplace_back(tensor, shard_name);
    }
    for (const auto& [tensor, shard] : wanted) {
      const std::size_t f = shard_index.at(shard);
      if (ckpt.files_[f].find(tensor) == nullptr) {
        throw FormatError(ip + ": weight_map puts '" + tensor + "' in '" + shard +
                          "', but that shard has no such tensor");
      }
      ckpt.owner_.emplace(tensor, f);
    }
    return ckpt;
  }

  for (const auto& t : ckpt.files_.front().tensors()) ckpt.owner_.emplace(t.name, 0);
  return ckpt;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (std::size_t f = 0; f < files_.size(); ++f) {
    for (const auto& t : files_[f].tensors()) {
      const auto it = owner_.find(t.name);
      if (it != owner_.end() && it->second == f) out.push_back(t.name);
    }
  }
  return out;
}

bool Checkpoint::contains(std::string_view name) const {
  return owner_.count(name) > 0;
}

const SafetensorsFile& Checkpoint::file_of(std::string_view name) const {
  const auto it = owner_.find(name);
  if (it == owner_.end()) {
    throw InputError(path_ + ": checkpoint has no tensor named '" + std::string(name) + "'");
  }
  return files_[it->second];
}

const TensorInfo& Checkpoint::info(std::string_view name) const {
  return file_of(name).info(name);
}

TensorView Checkpoint::view(std::string_view name) const {
  return file_of(name).view(name);
}

// ---------------------------------------------------------------------------------------------
// Writer

void write_safetensors(const std::string& path, const std::vector<NamedView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || !seen.insert(t.name).second) {
      throw InputError(path + ": cannot write tensor name '" + t.name + "' twice or reserved");
    }
    std::uint64_t elements = 1;
    for (const auto d : t.view.shape) {
      if (d < 0) throw InputError(path + ": tensor '" + t.name + "' has a negative dimension");
      elements *= static_cast<std::uint64_t>(d);
    }
    const std::uint64_t expected = elements * dtype_size(t.view.dtype);
    if (expected != t.view.nbytes || (expected > 0 && t.view.data == nullptr)) {
      throw InputError(path + ": tensor '" + t.name + "' has " + std::to_string(t.view.nbytes) +
                       " bytes, expected " + std::to_string(expected));
    }
    header[t.name] = {{"dtype", std::string(dtype_name(t.view.dtype))},
                      {"shape", t.view.shape},
                      {"data_offsets", {offset, offset + expected}}};
    offset += expected;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write '" + path + "'");
  std::uint8_t len[8];
  std::uint64_t n = text.size();
  for (auto& b : len) {
    b = static_cast<std::uint8_t>(n & 0xff);
    n >>= 8;
  }
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors) {
    out.write(static_cast<const char*>(t.view.data), static_cast<std::streamsize>(t.view.nbytes));
  }
  out.flush();
  if (!out) throw Error("cannot write '" + path + "': write failed");
}

}  // namespace glimpse::core
