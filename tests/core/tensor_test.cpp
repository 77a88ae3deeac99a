#include "glimpse/core/tensor.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/core/error.h"
#include "test_util.h"

namespace glimpse::core {
namespace {

using test::TempDir;

TEST(TensorBridgeTest, SaveLoadRoundTripKeepsValuesAndDTypes) {
  TempDir dir;
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::arange(12, at::kFloat).reshape({3, 4}) / 7},
      {"bf16", at::randn({5, 2}).to(at::kBFloat16)},
      {"f16", at::randn({4}).to(at::kHalf)},
      {"f64", at::randn({2, 2}, at::kDouble)},
      {"i64", at::arange(6, at::kLong)},
      {"i32", at::arange(-3, 3, at::kInt)},
      {"i16", at::arange(-3, 3, at::kShort)},
      {"i8", at::arange(-3, 3, at::kChar)},
      {"u8", at::arange(250, 256, at::kLong).to(at::kByte)},
      {"bool", at::arange(4, at::kLong).remainder(2).to(at::kBool)},
      {"noncontig", at::arange(12, at::kFloat).reshape({3, 4}).t()},
  };
  const std::string path = dir.file("t.safetensors");
  save_tensors(path, tensors);
  const auto file = SafetensorsFile::open(path);
  for (const auto& [name, t] : tensors) {
    const at::Tensor back = load_tensor(file, name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(back, t)) << name;
  }
}

TEST(TensorBridgeTest, LoadIsZeroCopyWhenTheDTypeMatches) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  save_tensors(path, {{"w", at::randn({64, 32})}, {"b", at::randn({3}).to(at::kBFloat16)}});
  at::Tensor kept;
  {
    const auto file = SafetensorsFile::open(path);
    const at::Tensor w = load_tensor(file, "w");
    EXPECT_TRUE(shares_mapping(w, file));
    EXPECT_TRUE(shares_mapping(load_tensor(file, "w", at::kFloat), file));
    // A conversion must copy.
    const at::Tensor w16 = load_tensor(file, "w", at::kBFloat16);
    EXPECT_FALSE(shares_mapping(w16, file));
    EXPECT_EQ(w16.scalar_type(), at::kBFloat16);
    EXPECT_FALSE(shares_mapping(load_tensor(file, "b", at::kFloat), file));
    kept = w;
  }
  // The tensor keeps the mapping alive after the file object is gone.
  EXPECT_EQ(kept.sum().item<float>(), kept.sum().item<float>());
  EXPECT_EQ(kept.sizes(), (at::IntArrayRef{64, 32}));
  // The mapping is copy-on-write: an in-place edit changes this process's copy, not the file.
  kept.add_(1.0f);
  const auto again = SafetensorsFile::open(path);
  EXPECT_FALSE(at::equal(load_tensor(again, "w"), kept));
}

TEST(TensorBridgeTest, UnsupportedDTypeIsAnError) {
  TempDir dir;
  EXPECT_THROW(save_tensors(dir.file("c.safetensors"), {{"c", at::zeros({2}, at::kComplexFloat)}}),
               UnsupportedError);
  EXPECT_THROW(save_tensors(dir.file("u.safetensors"), {{"u", at::Tensor()}}), InputError);
}

}  // namespace
}  // namespace glimpse::core
