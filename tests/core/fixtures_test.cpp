// Every .safetensors file under the fixtures (written by an independent writer) reads with the
// names, dtypes and shapes that its manifest lists.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "test_util.h"

namespace glimpse::core {
namespace {
namespace fs = std::filesystem;

std::string manifest_dtype(const std::string& name) {
  if (name == "float32") return "F32";
  if (name == "float64") return "F64";
  if (name == "int64") return "I64";
  if (name == "int32") return "I32";
  if (name == "uint8") return "U8";
  if (name == "bool") return "BOOL";
  return "?" + name;
}

TEST(SafetensorsFixturesGolden, EveryFileMatchesItsManifest) {
  GLIMPSE_REQUIRE_FIXTURES();
  const fs::path root = test::fixtures_dir();
  int files_checked = 0, tensors_checked = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    const fs::path manifest_path = entry.path() / "manifest.json";
    if (!fs::exists(manifest_path)) continue;
    const auto manifest = nlohmann::json::parse(std::ifstream(manifest_path));
    for (const auto& [rel, desc] : manifest.at("files").items()) {
      if (fs::path(rel).extension() != ".safetensors") continue;
      SCOPED_TRACE(entry.path().filename().string() + "/" + rel);
      const auto file = SafetensorsFile::open((entry.path() / rel).string());
      const auto& listed = desc.at("tensors");
      EXPECT_EQ(file.tensors().size(), listed.size());
      for (const auto& [name, t] : listed.items()) {
        const TensorInfo* info = file.find(name);
        ASSERT_NE(info, nullptr) << name;
        EXPECT_EQ(std::string(dtype_name(info->dtype)), manifest_dtype(t.at("dtype")));
        EXPECT_EQ(info->shape, t.at("shape").get<std::vector<std::int64_t>>()) << name;
        // Values are readable through torch, and finite.
        const at::Tensor x = load_tensor(file, name);
        if (x.is_floating_point()) {
          EXPECT_TRUE(at::isfinite(x).all().item<bool>()) << name;
        }
        ++tensors_checked;
      }
      ++files_checked;
    }
    // The checkpoint itself: its byte size as listed, and every tensor mapped without a copy.
    const auto& model = manifest.at("model_files").at("model.safetensors");
    const fs::path model_dir = entry.path() / "model";
    EXPECT_EQ(fs::file_size(model_dir / "model.safetensors"),
              model.at("bytes").get<std::uint64_t>());
    const auto ckpt = Checkpoint::open(model_dir.string());
    EXPECT_GT(ckpt.names().size(), 10u);
    for (const auto& name : ckpt.names()) {
      EXPECT_TRUE(shares_mapping(load_tensor(ckpt, name), ckpt.file_of(name))) << name;
    }
    ++files_checked;
  }
  EXPECT_GE(files_checked, 40);
  EXPECT_GE(tensors_checked, 250);
}

}  // namespace
}  // namespace glimpse::core
