// VisionZip (../shared/specs/pruning_kv.md section 3.1) on the tiny LLaVA (official CLIP path,
// before the projector) and Qwen2-VL (EffiVLM-Bench's port, after the merger): kept indices and
// merged features against the official algorithm restated here in its batched one-hot form.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/prune/visionzip.h"
#include "test_util.h"

namespace glimpse::methods::prune {
namespace {

using test::load_case;

// Records the vision probe VisionZip asks for and the visual features it sees (before it, when
// attached before it) or leaves (after it).
class Capture : public pipeline::Method {
 public:
  Capture(bool qwen, std::int64_t layer) : qwen_(qwen), layer_(layer) {}
  std::string type() const override { return "capture"; }
  void report(pipeline::Report&) const override {}
  std::optional<model::VisionProbeRequest> vision_probe(std::int64_t layer) override {
    if (layer != layer_) return std::nullopt;
    return model::VisionProbeRequest{
        qwen_ ? model::VisionProbeRequest::Query::Mean : model::VisionProbeRequest::Query::Cls,
        true, true};
  }
  void on_vision_attention_probe(const model::VisionAttentionProbe& p) override {
    for (std::size_t m = 0; m < p.attention.size(); ++m) {
      attention.push_back(p.attention[m].view({-1}));
      keys.push_back(p.keys.at(m));
    }
  }
  void on_vision_features(model::VisionFeatures& f) override {
    if (!qwen_) features = f.features;
  }
  void on_vision_out(model::VisionOut& v) override {
    if (qwen_) features = {v.image_embeds};
  }
  bool qwen_;
  std::int64_t layer_;
  std::vector<at::Tensor> attention, keys, features;
};

struct Zipped {
  at::Tensor keep, features;
};

// visionzip/clip_encoder.py:CLIPVisionTower_VisionZip.forward for one medium without CLS, with
// EffiVLM's placement of the contextual tokens at their targets' rows (sorted keep).
Zipped official_zip(const at::Tensor& hidden_in, const at::Tensor& scores, const at::Tensor& metric,
                    std::int64_t dominant, std::int64_t contextual) {
  const at::Tensor hidden = hidden_in.to(at::kFloat);
  const std::int64_t n = hidden.size(0);
  const at::Tensor all_indices = std::get<1>(scores.topk(dominant));
  const at::Tensor mask = at::ones({n}, at::kBool).scatter_(0, all_indices, false);
  const at::Tensor filtered_indices = mask.nonzero().view({-1});
  const at::Tensor dominant_tokens = hidden.index_select(0, (~mask).nonzero().view({-1}));
  const at::Tensor metric_filtered = metric.index_select(0, filtered_indices);
  const at::Tensor hidden_filtered = hidden.index_select(0, filtered_indices);
  const at::Tensor normalized = metric_filtered / metric_filtered.norm(2, -1, true);
  const std::int64_t step = std::max<std::int64_t>(1, normalized.size(0) / contextual);
  const at::Tensor target_indices =
      at::arange(0, normalized.size(0), step, at::kLong).narrow(0, 0, contextual);
  const at::Tensor not_target =
      ~at::isin(at::arange(normalized.size(0), at::kLong), target_indices);
  const at::Tensor to_merge = normalized.index({not_target});
  const at::Tensor similarity =
      at::matmul(to_merge, normalized.index_select(0, target_indices).t());
  const at::Tensor one_hot =
      at::zeros({to_merge.size(0), contextual}).scatter_(1, similarity.argmax(1).unsqueeze(-1), 1);
  const at::Tensor counts = one_hot.sum(0).clamp_min(1).unsqueeze(-1);
  const at::Tensor aggregated =
      at::matmul(one_hot.t(), hidden_filtered.index({not_target})) / counts;
  const at::Tensor contextual_tokens = hidden_filtered.index_select(0, target_indices) + aggregated;
  const at::Tensor sorted_dominant = std::get<0>(all_indices.sort());
  const at::Tensor keep = std::get<0>(
      at::cat({sorted_dominant, filtered_indices.index_select(0, target_indices)}).sort());
  at::Tensor out = at::zeros({keep.numel(), hidden.size(1)});
  const at::Tensor is_dominant = at::isin(keep, sorted_dominant);
  out.index_put_({is_dominant}, dominant_tokens);
  out.index_put_({~is_dominant}, contextual_tokens);
  return {keep, out};
}

struct ZipRun {
  model::ForwardOutput out;
  std::vector<at::Tensor> kept;
  nlohmann::json report;
};

ZipRun run_zip(model::Model& m, const model::ForwardInputs& in, const std::string& params,
               Capture* before = nullptr, Capture* after = nullptr) {
  pipeline::Pipeline p;
  if (before) p.attach(*before);
  auto method = VisionZip::create(core::Config::parse(
      R"({"type": "visionzip")" + (params.empty() ? "" : ", " + params) + "}", "test"));
  const auto& zip = static_cast<const VisionZip&>(*method);
  p.add(std::move(method));
  if (after) p.attach(*after);
  p.bind(pipeline::MethodContext(m));
  model::ForwardOptions o;
  o.hooks = &p;
  ZipRun r;
  r.out = m.forward(in, o);
  r.kept = zip.kept();
  r.report = nlohmann::json::parse(p.report().to_json()).at("methods")[0];  // capture adds none
  return r;
}

class VisionZipCases : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(VisionZipCases, KeepsAndMergesAsTheOfficialCode) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model_name, case_name] = GetParam();
  const bool qwen = model_name != "tiny-llava-1.5";
  auto m = model::load_model(test::fixtures_dir() + "/" + model_name + "/model");
  const auto in = load_case(model_name, case_name);
  const auto base = m->forward(in, {});
  // The probed block: depth - 2 (Qwen: 2 blocks -> 0; LLaVA: 3 layers -> 1, the selected one).
  const std::int64_t layer = qwen ? 0 : 1;
  Capture before(qwen, layer), after(qwen, layer);
  const std::int64_t dominant = 5, contextual = 3;
  const ZipRun r = run_zip(*m, in, R"("dominant": 5, "contextual": 3)", &before, &after);
  ASSERT_FALSE(before.features.empty());
  // The media as VisionZip sees them: LLaVA per image; Qwen's merger output split per image.
  std::vector<at::Tensor> media = before.features;
  if (qwen) {
    std::vector<std::int64_t> sizes;
    for (const auto& a : before.attention) sizes.push_back(a.numel() / 4);
    media = at::split_with_sizes(before.features[0], sizes, 0);
  }
  ASSERT_EQ(media.size(), r.kept.size());
  ASSERT_GE(media.size(), 1u);
  std::vector<at::Tensor> want_features;
  std::int64_t offset = 0;
  std::vector<at::Tensor> kept_original;
  const at::Tensor visual = base.layout.visual_indices(0);
  for (std::size_t j = 0; j < media.size(); ++j) {
    at::Tensor scores = before.attention[j], metric = before.keys[j];
    if (qwen) {  // EffiVLM: mean over each 2x2 merge group
      scores = scores.view({-1, 4}).mean(1);
      metric = metric.view({-1, 4, metric.size(1)}).mean(1);
    }
    const Zipped z = official_zip(media[j], scores, metric, dominant, contextual);
    EXPECT_TRUE(at::equal(r.kept[j], z.keep)) << "medium " << j << r.kept[j] << z.keep;
    EXPECT_EQ(r.kept[j].numel(), dominant + contextual);
    want_features.push_back(z.features);
    kept_original.push_back(visual.narrow(0, offset, media[j].size(0)).index_select(0, z.keep));
    offset += media[j].size(0);
  }
  const at::Tensor got = qwen ? after.features[0] : at::cat(after.features);
  EXPECT_TRUE(at::allclose(got.to(at::kFloat), at::cat(want_features), 1e-5, 1e-6))
      << (got.to(at::kFloat) - at::cat(want_features)).abs().max().item<float>();
  // The sequence: text and the kept visual tokens; Qwen keeps their M-RoPE ids, LLaVA renumbers.
  const at::Tensor kept_visual = at::cat(kept_original);
  EXPECT_TRUE(at::equal(r.out.layout.visual_indices(0).numel() * at::ones({1}, at::kLong),
                        kept_visual.numel() * at::ones({1}, at::kLong)));
  EXPECT_TRUE(at::equal(
      r.out.layout.original_index[0].index_select(0, r.out.layout.visual_indices(0)), kept_visual));
  if (qwen) {
    EXPECT_TRUE(at::equal(r.out.layout.positions,
                          base.layout.positions.index_select(2, r.out.layout.original_index[0])));
  } else {
    EXPECT_TRUE(
        at::equal(r.out.layout.positions.view({-1}), at::arange(r.out.layout.length(), at::kLong)));
  }
  EXPECT_EQ(r.report.at("visual_tokens_after"), kept_visual.numel());
  EXPECT_LT(r.report.at("prefill_flops_after").get<double>(),
            r.report.at("prefill_flops_before").get<double>());
  // Generation runs on the reduced prompt.
  pipeline::Pipeline p = pipeline::Pipeline::from_json(
      R"({"methods": [{"type": "visionzip", "dominant": 5, "contextual": 3}]})", "t");
  p.bind(pipeline::MethodContext(*m));
  generate::GenerationConfig g;
  g.max_new_tokens = 4;
  generate::GenerateOptions go;
  go.hooks = &p;
  EXPECT_EQ(generate::generate(*m, in, g, go).new_tokens.size(1), 4);
}

INSTANTIATE_TEST_SUITE_P(Models, VisionZipCases,
                         ::testing::Values(std::make_pair("tiny-llava-1.5", "two_images"),
                                           std::make_pair("tiny-qwen2-vl", "two_images"),
                                           std::make_pair("tiny-qwen2-vl", "image_a"),
                                           std::make_pair("tiny-qwen2.5-vl", "image_a")));

TEST(VisionZipGolden, IdentitySettingsReproduceTheBaselineExactly) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    auto m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
    const auto in = load_case(name, "two_images");
    const at::Tensor base = m->forward(in, {}).logits;
    for (const std::string params : {R"("ratio": 0)", R"("dominant": 100000, "contextual": 0)"}) {
      const ZipRun r = run_zip(*m, in, params);
      EXPECT_TRUE(at::equal(r.out.logits, base)) << name << " " << params;
      EXPECT_EQ(r.report.at("applied"), 0);
      EXPECT_EQ(r.report.at("visual_tokens_after"), r.report.at("visual_tokens_before"));
    }
  }
}

TEST(VisionZipGolden, WithoutContextualTokensItIsTheTopKOfTheAttention) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-llava-1.5/model");
  const auto in = load_case("tiny-llava-1.5", "image_a");
  Capture before(false, 1);
  const ZipRun r = run_zip(*m, in, R"("dominant": 6, "contextual": 0)", &before);
  ASSERT_EQ(r.kept.size(), 1u);
  const at::Tensor top = std::get<0>(std::get<1>(before.attention[0].topk(6)).sort());
  EXPECT_TRUE(at::equal(r.kept[0], top));
}

TEST(VisionZipGolden, ClipKeysAreTheBlocksKeyProjectionAveragedOverHeads) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-llava-1.5/model");
  const auto in = load_case("tiny-llava-1.5", "image_a");
  class Pre : public Capture {
   public:
    using Capture::Capture;
    void on_vision_block(model::VisionBlock& b) override {
      if (!b.post && b.layer == 1) hidden = b.hidden;
    }
    at::Tensor hidden;
  } capture(false, 1);
  run_zip(*m, in, "", &capture);
  ASSERT_TRUE(capture.hidden.defined());
  const std::string p = "vision_tower.vision_model.encoder.layers.1.";
  const at::Tensor x = capture.hidden[0].to(at::kFloat);
  const at::Tensor h =
      at::layer_norm(x, {x.size(1)}, m->weight(p + "layer_norm1.weight").to(at::kFloat),
                     m->weight(p + "layer_norm1.bias").to(at::kFloat), 1e-5);
  const at::Tensor k = at::linear(h, m->weight(p + "self_attn.k_proj.weight").to(at::kFloat),
                                  m->weight(p + "self_attn.k_proj.bias").to(at::kFloat));
  const at::Tensor want = k.narrow(0, 1, k.size(0) - 1).view({k.size(0) - 1, 4, -1}).mean(1);
  EXPECT_TRUE(at::allclose(capture.keys[0], want, 1e-5, 1e-6));
}

TEST(VisionZipGolden, EachSequenceOfABatchGetsWhatItGetsAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const auto in = load_case("tiny-qwen2-vl", "batch_left_pad");
  const std::int64_t image_token = m->config().get_int("image_token_id");
  const std::string params = R"("ratio": 0.5)";
  const ZipRun batch = run_zip(*m, in, params);
  EXPECT_EQ(batch.report.at("applied"), 1);
  for (std::int64_t b = 0; b < 2; ++b) {
    const ZipRun alone = run_zip(*m, test::row_alone(in, b, image_token), params);
    EXPECT_TRUE(at::allclose(batch.out.logits[b][-1], alone.out.logits[0][-1], 1e-4, 1e-5))
        << "row " << b;
  }
}

TEST(VisionZipGolden, BadSettingsAreClearErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto error = [](const std::string& params) {
    try {
      auto p = pipeline::Pipeline::from_json(
          R"({"methods": [{"type": "visionzip", )" + params + "}]}", "p.json");
      auto m = model::load_model(test::fixtures_dir() + "/tiny-llava-1.5/model");
      p.bind(pipeline::MethodContext(*m));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(R"("ratio": 1)").find("'ratio'"), std::string::npos);
  EXPECT_NE(error(R"("ratio": 0.5, "dominant": 3, "contextual": 1)").find("either"),
            std::string::npos);
  EXPECT_NE(error(R"("dominant": 3)").find("'contextual'"), std::string::npos);
  EXPECT_NE(error(R"("dominant": -3, "contextual": 1)").find(">= 0"), std::string::npos);
  // LLaVA runs its tower up to block 1 of 3: block 2 (layer -1) never runs.
  EXPECT_NE(error(R"("layer": -1)").find("outside the vision blocks this model runs, 0..1"),
            std::string::npos);
  EXPECT_NE(error(R"("layer": 7)").find("'layer'"), std::string::npos);
  EXPECT_NE(error(R"("keep": 7)").find("'keep'"), std::string::npos);
  EXPECT_EQ(error(R"("ratio": 0.5)"), "accepted");
}

}  // namespace
}  // namespace glimpse::methods::prune
