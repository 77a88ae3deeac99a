// LoadOptions::weights: resident weights (copied into the huge-page arena) and mapped weights (read
// in place from the checkpoint files) give the same model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

class WeightMemoryGolden : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(WeightMemoryGolden, ResidentAndMappedWeightsGiveTheSameLogits) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model_name, case_name] = GetParam();
  const std::string dir = test::fixtures_dir() + "/" + model_name;
  const ForwardInputs in = read_forward_inputs(dir + "/cases/" + case_name + ".inputs.safetensors");
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    LoadOptions resident, mapped;
    resident.dtype = mapped.dtype = dtype;
    resident.weights = WeightMemory::Resident;
    mapped.weights = WeightMemory::Mapped;
    const at::Tensor a = load_model(dir + "/model", resident)->forward(in, {}).logits;
    const at::Tensor b = load_model(dir + "/model", mapped)->forward(in, {}).logits;
    EXPECT_EQ(a.scalar_type(), dtype);
    EXPECT_TRUE(at::equal(a, b)) << model_name << " " << c10::toString(dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, WeightMemoryGolden,
                         ::testing::Values(std::make_pair("tiny-qwen2-vl", "image_a"),
                                           std::make_pair("tiny-qwen2.5-vl", "video"),
                                           std::make_pair("tiny-llava-1.5", "image_a")));

}  // namespace
}  // namespace glimpse::model
