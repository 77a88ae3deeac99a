// glimpse safetensors ls FILE|DIR: list the tensors of a file, a checkpoint or a folder of files.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"

namespace glimpse::cli {
namespace fs = std::filesystem;

namespace {

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

struct Listing {
  std::string file;
  std::vector<core::TensorInfo> tensors;
};

// A model folder (index or model.safetensors) lists as one checkpoint; any other folder lists
// each of its .safetensors files.
std::vector<Listing> collect(const std::string& path) {
  std::vector<Listing> out;
  std::error_code ec;
  const bool dir = fs::is_directory(path, ec);
  const bool checkpoint = !dir || fs::exists(fs::path(path) / "model.safetensors.index.json", ec) ||
                          fs::exists(fs::path(path) / "model.safetensors", ec);
  if (!dir && !fs::exists(path, ec)) throw InputError("'" + path + "': no such file or folder");
  if (checkpoint) {
    const auto ckpt = core::Checkpoint::open(path);
    for (const auto& file : ckpt.files()) out.push_back({file.path(), file.tensors()});
    return out;
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
  }
  if (ec) throw InputError("'" + path + "': cannot list folder: " + ec.message());
  if (files.empty()) throw InputError("'" + path + "': no .safetensors files in this folder");
  std::sort(files.begin(), files.end());
  for (const auto& f : files) out.push_back({f, core::SafetensorsFile::open(f).tensors()});
  return out;
}

}  // namespace

void add_safetensors_command(CLI::App& app) {
  auto* group = app.add_subcommand("safetensors", "Inspect safetensors files");
  group->require_subcommand(1);
  auto* ls = group->add_subcommand("ls", "List name, dtype, shape and bytes of every tensor");
  auto path = std::make_shared<std::string>();
  auto json_out = std::make_shared<bool>(false);
  ls->add_option("path", *path, "A .safetensors file, a checkpoint folder or an index file")
      ->required();
  ls->add_flag("--json", *json_out, "Print one JSON object per tensor");
  ls->callback([path, json_out] {
    const auto listings = collect(*path);
    std::uint64_t total_bytes = 0;
    std::size_t count = 0;
    for (const auto& listing : listings) {
      if (!*json_out) std::printf("# %s\n", listing.file.c_str());
      for (const auto& t : listing.tensors) {
        if (*json_out) {
          const nlohmann::json j = {{"file", listing.file},
                                    {"name", t.name},
                                    {"dtype", core::dtype_name(t.dtype)},
                                    {"shape", t.shape},
                                    {"bytes", t.nbytes()}};
          std::printf("%s\n", j.dump().c_str());
        } else {
          std::printf("%-60s %-5s %-24s %llu\n", t.name.c_str(),
                      std::string(core::dtype_name(t.dtype)).c_str(), shape_string(t.shape).c_str(),
                      static_cast<unsigned long long>(t.nbytes()));
        }
        total_bytes += t.nbytes();
        ++count;
      }
    }
    if (!*json_out) {
      std::printf("%zu tensors, %llu bytes\n", count, static_cast<unsigned long long>(total_bytes));
    }
  });
}

}  // namespace glimpse::cli
