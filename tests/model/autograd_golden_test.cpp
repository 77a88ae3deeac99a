// The autograd path (ForwardOptions::autograd, issue 15): the same weights through plain
// differentiable libtorch ops give the fast path's logits on every fixture case, gradients reach
// the inputs and agree with finite differences, and the mode stays on the calling thread.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

namespace fs = std::filesystem;

const char* const kModels[] = {"tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-1.5"};

ForwardOptions autograd() {
  ForwardOptions o;
  o.autograd = true;
  return o;
}

TEST(AutogradGolden, EqualsTheFastPathOnEveryFixtureCase) {
  GLIMPSE_REQUIRE_FIXTURES();
  std::int64_t cases = 0;
  for (const std::string name : kModels) {
    auto m = load_model(test::fixtures_dir() + "/" + name + "/model");
    for (const auto& entry : fs::directory_iterator(test::fixtures_dir() + "/" + name + "/cases")) {
      const std::string file = entry.path().filename().string();
      const std::string suffix = ".inputs.safetensors";
      if (file.size() <= suffix.size() ||
          file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const ForwardInputs in = read_forward_inputs(entry.path().string());
      ForwardOptions fast;
      fast.output_hidden_states = true;
      ForwardOptions slow = autograd();
      slow.output_hidden_states = true;
      const ForwardOutput a = m->forward(in, fast), b = m->forward(in, slow);
      ASSERT_EQ(a.logits.sizes(), b.logits.sizes()) << name << " " << file;
      EXPECT_TRUE(at::allclose(b.logits, a.logits, 1e-4, 1e-4))
          << name << " " << file << ": max diff "
          << (b.logits - a.logits).abs().max().item<float>();
      ASSERT_EQ(a.hidden_states.size(), b.hidden_states.size());
      for (std::size_t i = 0; i < a.hidden_states.size(); ++i) {
        EXPECT_TRUE(at::allclose(b.hidden_states[i], a.hidden_states[i], 1e-4, 1e-4))
            << name << " " << file << " hidden state " << i;
      }
      ++cases;
    }
  }
  EXPECT_GE(cases, 12);
}

// d(loss)/d(input) along a random direction: autograd against central differences.
void check_gradient(Model& m, ForwardInputs in, at::Tensor ForwardInputs::*input,
                    const std::string& what) {
  at::manual_seed(7);
  const at::Tensor x = (in.*input).to(at::kFloat).detach();
  const ForwardOutput probe = m.forward(in, {});
  const at::Tensor weights = at::randn(probe.logits.sizes());  // loss = <logits, weights>
  auto loss = [&](const at::Tensor& value) {
    ForwardInputs moved = in;
    moved.*input = value;
    return (m.forward(moved, autograd()).logits * weights).sum();
  };
  const at::Tensor leaf = x.clone().requires_grad_(true);
  const at::Tensor l = loss(leaf);
  ASSERT_TRUE(l.requires_grad()) << what;
  l.backward();
  ASSERT_TRUE(leaf.grad().defined()) << what;
  EXPECT_TRUE(at::isfinite(leaf.grad()).all().item<bool>()) << what;
  const at::Tensor v = at::randn(x.sizes());
  const double analytic = (leaf.grad() * v).sum().item<double>();
  const double eps = 1e-2 / std::max(1.0, v.abs().max().item<double>());
  at::NoGradGuard no_grad;
  const double numeric =
      (loss(x + eps * v).item<double>() - loss(x - eps * v).item<double>()) / (2 * eps);
  EXPECT_NEAR(analytic, numeric, 2e-2 * std::max(1.0, std::abs(numeric)))
      << what << ": autograd " << analytic << ", finite differences " << numeric;
  // The fast path and a plain forward do not build a graph.
  EXPECT_FALSE(m.forward(in, {}).logits.requires_grad());
}

TEST(AutogradGolden, GradientsReachTheInputsAndMatchFiniteDifferences) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-1.5"}) {
    auto m = load_model(test::fixtures_dir() + "/" + name + "/model");
    const ForwardInputs in = read_forward_inputs(test::fixtures_dir() + "/" + name +
                                                 "/cases/image_a.inputs.safetensors");
    // Through the vision tower, the merger or projector, and the decoder.
    check_gradient(*m, in, &ForwardInputs::pixel_values, name + " pixel_values");
    // Through the decoder alone: the image features given as embeddings.
    ForwardInputs with_embeds = in;
    with_embeds.image_embeds = m->embed_media(in).image_embeds.detach();
    with_embeds.pixel_values = at::Tensor();
    with_embeds.image_grid_thw = in.image_grid_thw;  // Qwen's positions still need the grid
    check_gradient(*m, with_embeds, &ForwardInputs::image_embeds, name + " image_embeds");
  }
}

// Training (glimpse train-demo) marks the model's own weights requires_grad: every weight must get
// a gradient, and those of a decoder MLP and of the vision tower's first attention must agree with
// finite differences (two images in one pass: the tower's per-image attention blocks).
TEST(AutogradGolden, GradientsReachEveryWeight) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-1.5"}) {
    LoadOptions options;
    options.weights = WeightMemory::Resident;
    auto m = load_model(test::fixtures_dir() + "/" + name + "/model", options);
    const ForwardInputs in = read_forward_inputs(test::fixtures_dir() + "/" + name +
                                                 "/cases/two_images.inputs.safetensors");
    at::manual_seed(3);
    const at::Tensor direction = at::randn(m->forward(in, {}).logits.sizes());
    const auto names = m->weight_names();
    for (const auto& n : names) m->weight(n).requires_grad_(true);
    const at::Tensor loss = (m->forward(in, autograd()).logits * direction).sum();
    loss.backward();
    std::int64_t reached = 0;
    for (const auto& n : names) {
      const at::Tensor g = m->weight(n).grad();
      // LLaVA's tower runs only to the selected layer: later layers get no gradient.
      if (!g.defined()) {
        EXPECT_NE(n.find("vision_tower"), std::string::npos) << name << " " << n;
        continue;
      }
      EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << name << " " << n;
      ++reached;
    }
    EXPECT_GE(reached, static_cast<std::int64_t>(names.size()) * 3 / 4) << name;
    auto find = [&](auto&& wanted) {
      for (const auto& n : names)
        if (wanted(n)) return n;
      return std::string();
    };
    const bool vision_first = name.find("llava") != std::string::npos;
    const std::vector<std::string> probes = {
        find([](const std::string& n) {
          return n.find("vision") == std::string::npos && n.find("visual") == std::string::npos &&
                 n.find("layers.0.mlp.down_proj.weight") != std::string::npos;
        }),
        find([&](const std::string& n) {
          return vision_first ? n.find("vision_tower") != std::string::npos &&
                                    n.find("layers.0.self_attn.q_proj.weight") != std::string::npos
                              : n.find("visual.blocks.0.attn.qkv.weight") != std::string::npos;
        })};
    for (const auto& probe : probes) {
      ASSERT_FALSE(probe.empty()) << name;
      const at::Tensor w = m->weight(probe);
      ASSERT_TRUE(w.grad().defined()) << name << " " << probe;
      const at::Tensor v = at::randn(w.sizes());
      const double analytic = (w.grad() * v).sum().item<double>();
      const double eps = 1e-3;
      at::NoGradGuard no_grad;
      const at::Tensor saved = w.clone();
      w.add_(v, eps);
      const double up = (m->forward(in, autograd()).logits * direction).sum().item<double>();
      w.copy_(saved).add_(v, -eps);
      const double down = (m->forward(in, autograd()).logits * direction).sum().item<double>();
      w.copy_(saved);
      const double numeric = (up - down) / (2 * eps);
      EXPECT_NEAR(analytic, numeric, 2e-2 * std::max(1.0, std::abs(numeric)))
          << name << " " << probe;
    }
    for (const auto& n : names) m->weight(n).requires_grad_(false);
  }
}

TEST(AutogradGolden, CachedPassesAreRefused) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const ForwardInputs in = read_forward_inputs(test::fixtures_dir() +
                                               "/tiny-qwen2-vl/cases/text_only.inputs.safetensors");
  DecodeState state = m->new_state(1);
  EXPECT_THROW(m->forward_cached(in, autograd(), state), UnsupportedError);
}

TEST(ReferenceOps, StaysOnTheCallingThread) {
  EXPECT_FALSE(kernels::reference_ops());
  {
    const kernels::ReferenceOps on(true);
    EXPECT_TRUE(kernels::reference_ops());
    bool other = true;
    std::thread([&] { other = kernels::reference_ops(); }).join();
    EXPECT_FALSE(other);
    {
      const kernels::ReferenceOps nested(false);  // does not switch an outer one off
      EXPECT_TRUE(kernels::reference_ops());
    }
    EXPECT_TRUE(kernels::reference_ops());
  }
  EXPECT_FALSE(kernels::reference_ops());
}

}  // namespace
}  // namespace glimpse::model
