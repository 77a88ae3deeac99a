// The forward and generate contracts of the glimpse tool against the fixtures.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "glimpse/core/tensor.h"
#include "test_util.h"

namespace glimpse::test {
namespace {

TEST(ModelCliGolden, ForwardWritesTheReferenceNamesAndValues) {
  GLIMPSE_REQUIRE_FIXTURES();
  TempDir dir;
  const std::string m = fixtures_dir() + "/tiny-qwen2.5-vl";
  const auto r = run_cli({"forward", "--model", m + "/model", "--inputs",
                          m + "/cases/two_images.inputs.safetensors", "--out", dir.file("o.st"),
                          "--output-hidden-states", "--output-attentions"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto out = core::SafetensorsFile::open(dir.file("o.st"));
  const auto ref = core::SafetensorsFile::open(m + "/cases/two_images.forward.safetensors");
  ASSERT_EQ(out.tensors().size(), ref.tensors().size());
  for (const auto& t : ref.tensors()) {
    ASSERT_NE(out.find(t.name), nullptr) << t.name;
    const at::Tensor a = core::load_tensor(out, t.name), b = core::load_tensor(ref, t.name);
    EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-5)) << t.name;
  }
}

TEST(ModelCliGolden, ForwardKvDumpWritesTheKeptSlotsPerLayer) {
  GLIMPSE_REQUIRE_FIXTURES();
  TempDir dir;
  const std::string m = fixtures_dir() + "/tiny-qwen2-vl";
  const auto r =
      run_cli({"forward", "--model", m + "/model", "--inputs",
               m + "/cases/two_images.inputs.safetensors", "--out", dir.file("o.st"), "--pipeline",
               R"({"methods": [{"type": "snapkv", "budget": 20, "window": 4}]})", "--kv-dump",
               dir.file("kv.st"), "--report", dir.file("r.json")});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto kv = core::SafetensorsFile::open(dir.file("kv.st"));
  ASSERT_EQ(kv.tensors().size(), 3u);  // one per layer
  for (int l = 0; l < 3; ++l) {
    const at::Tensor kept = core::load_tensor(kv, "kept." + std::to_string(l));
    // 2 KV heads, each the budget of 20 prompt slots: 16 chosen, then the window 63..66.
    ASSERT_EQ(kept.sizes(), (at::IntArrayRef{2, 20}));
    EXPECT_TRUE(at::equal(kept.narrow(1, 16, 4)[0], at::arange(63, 67, at::kLong)));
    EXPECT_TRUE(kept.narrow(1, 1, 19).gt(kept.narrow(1, 0, 19)).all().item<bool>());
  }
  std::ifstream in(dir.file("r.json"));
  const auto report = nlohmann::json::parse(in);
  EXPECT_EQ(report.at("kv").at("backend"), "ragged");
  EXPECT_EQ(report.at("kv").at("kept")[0], (std::vector<std::int64_t>{20, 20}));
}

TEST(ModelCliGolden, GenerateJsonEndsWithSequencesAndNewTokens) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string m = fixtures_dir() + "/tiny-qwen2-vl";
  const auto r =
      run_cli({"generate", "--model", m + "/model", "--inputs",
               m + "/cases/video.inputs.safetensors", "--max-new-tokens", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(last_line(r.out));
  const auto ref = core::SafetensorsFile::open(m + "/cases/video.generate.safetensors");
  const at::Tensor expected = core::load_tensor(ref, "new_tokens");
  ASSERT_EQ(j.at("new_tokens").size(), 1u);
  const auto ids = j.at("new_tokens")[0].get<std::vector<std::int64_t>>();
  EXPECT_TRUE(at::equal(at::tensor(ids, at::kLong).view({1, -1}), expected));
  EXPECT_EQ(j.at("sequences")[0].size(),
            static_cast<std::size_t>(core::load_tensor(ref, "sequences").size(1)));
}

TEST(ModelCliGolden, BadInputGivesOneLineErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  TempDir dir;
  const std::string m = fixtures_dir() + "/tiny-qwen2-vl";
  const std::string in = m + "/cases/image_a.inputs.safetensors";
  const std::vector<std::vector<std::string>> calls = {
      {"forward", "--model", m + "/model", "--inputs", in, "--out", dir.file("o"), "--dtype",
       "f16"},
      {"forward", "--model", dir.path().string(), "--inputs", in, "--out", dir.file("o")},
      {"forward", "--model", m + "/model", "--inputs", m + "/model/config.json", "--out",
       dir.file("o")},
      {"forward", "--model", m + "/model", "--inputs", m + "/cases/image_a.vision.safetensors",
       "--out", dir.file("o")},
      {"generate", "--model", m + "/model", "--inputs", in, "--max-new-tokens", "-1"},
      {"generate", "--model", m + "/model", "--inputs", in, "--do-sample", "--temperature", "0"},
  };
  for (const auto& args : calls) {
    const auto r = run_cli(args);
    EXPECT_GT(r.exit_code, 0) << r.out;
    EXPECT_LT(r.exit_code, 128) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
}

}  // namespace
}  // namespace glimpse::test
