// The hook sites vision.out, blocks.{i}.mlp, kv.after_prefill and kv.decode_step, and precomputed
// vision features (ForwardInputs::image_embeds), on the tiny fixture models.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"
#include "tensor_testing.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

ForwardInputs load_case(const std::string& model, const std::string& name) {
  return read_forward_inputs(test::fixtures_dir() + "/" + model + "/cases/" + name +
                             ".inputs.safetensors");
}

// Hooks made of lambdas, for the sites these tests use.
struct LambdaHooks : ForwardHooks {
  std::function<void(VisionOut&)> vision;
  std::function<void(MlpSite&)> mlp;
  std::function<void(KvSite&)> kv;
  void on_vision_out(VisionOut& v) override {
    if (vision) vision(v);
  }
  void on_mlp(MlpSite& m) override {
    if (mlp) mlp(m);
  }
  void on_kv(KvSite& k) override {
    if (kv) kv(k);
  }
};

class MediaModelsGolden : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(MediaModelsGolden, PrecomputedVisionFeaturesGiveTheSameLogits) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model_name, case_name] = GetParam();
  auto m = load_model(test::fixtures_dir() + "/" + model_name + "/model");
  const ForwardInputs in = load_case(model_name, case_name);
  const at::Tensor base = m->forward(in, {}).logits;

  const MediaEmbeds media = m->embed_media(in);
  ASSERT_TRUE(media.image_embeds.defined() || media.video_embeds.defined());
  ForwardInputs cached = in;
  cached.pixel_values = cached.pixel_values_videos = at::Tensor();
  cached.image_embeds = media.image_embeds;
  cached.video_embeds = media.video_embeds;
  EXPECT_TRUE(at::equal(m->forward(cached, {}).logits, base));

  // vision.out sees the same features, one row per placeholder, with the prompt's layout.
  LambdaHooks hooks;
  std::int64_t rows = 0;
  hooks.vision = [&](VisionOut& v) {
    ASSERT_NE(v.layout, nullptr);
    const at::Tensor feats = v.image_embeds.defined() ? v.image_embeds : v.video_embeds;
    EXPECT_TRUE(
        at::equal(feats, media.image_embeds.defined() ? media.image_embeds : media.video_embeds));
    rows = feats.size(0);
    EXPECT_EQ(v.layout->modality.ne(0).sum().item<std::int64_t>(), rows);
  };
  ForwardOptions o;
  o.hooks = &hooks;
  EXPECT_TRUE(at::equal(m->forward(in, o).logits, base));
  EXPECT_GT(rows, 0);

  // Replacing the features changes the answer; a wrong shape is an error naming the site.
  hooks.vision = [](VisionOut& v) {
    if (v.image_embeds.defined()) v.image_embeds = at::zeros_like(v.image_embeds);
    if (v.video_embeds.defined()) v.video_embeds = at::zeros_like(v.video_embeds);
  };
  EXPECT_FALSE(at::allclose(m->forward(in, o).logits, base));
  hooks.vision = [](VisionOut& v) {
    if (v.image_embeds.defined()) v.image_embeds = v.image_embeds.narrow(0, 0, 1);
    if (v.video_embeds.defined()) v.video_embeds = v.video_embeds.narrow(0, 0, 1);
  };
  try {
    m->forward(in, o);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("vision.out"), std::string::npos) << e.what();
  }

  cached.image_embeds =
      media.image_embeds.defined() ? media.image_embeds.narrow(0, 1, 2) : media.image_embeds;
  cached.video_embeds =
      media.video_embeds.defined() ? media.video_embeds.narrow(0, 1, 2) : media.video_embeds;
  EXPECT_THROW(m->forward(cached, {}), InputError);
}

INSTANTIATE_TEST_SUITE_P(Cases, MediaModelsGolden,
                         ::testing::Values(std::make_pair("tiny-qwen2-vl", "two_images"),
                                           std::make_pair("tiny-qwen2.5-vl", "video"),
                                           std::make_pair("tiny-llava-1.5", "two_images")));

TEST(HookSitesGolden, MlpSiteReadsAndReplacesTheMlpOutput) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  ForwardOptions plain;
  plain.output_hidden_states = true;
  const ForwardOutput base = m->forward(in, plain);

  LambdaHooks hooks;
  std::vector<std::int64_t> layers;
  hooks.mlp = [&](MlpSite& s) {
    layers.push_back(s.layer);
    EXPECT_TRUE(s.prefill);
    EXPECT_EQ(s.input.sizes(), s.output.sizes());
  };
  ForwardOptions o = plain;
  o.hooks = &hooks;
  EXPECT_TRUE(at::equal(m->forward(in, o).logits, base.logits));
  EXPECT_EQ(layers, (std::vector<std::int64_t>{0, 1, 2}));

  // Removing the MLP of layer 1 makes layer 1's output its post-attention residual: the
  // difference to the plain run at hidden_states[2] is exactly minus that MLP's output.
  at::Tensor removed;
  hooks.mlp = [&](MlpSite& s) {
    if (s.layer != 1) return;
    removed = s.output;
    s.output = at::zeros_like(s.output);
  };
  const ForwardOutput cut = m->forward(in, o);
  EXPECT_TRUE(at::equal(cut.hidden_states[1], base.hidden_states[1]));
  EXPECT_TRUE(
      test::all_close(cut.hidden_states[2] + removed, base.hidden_states[2], 1e-6, 1e-6, "h2"));
}

TEST(HookSitesGolden, KvSitesSeeEveryPassAndEvictionEqualsMaskingTheKeys) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  in.attention_mask = at::ones_like(in.input_ids);
  const std::int64_t s = in.input_ids.size(1);
  // Evict every other visual token from every layer's cache after the prefill.
  const at::Tensor visual = m->forward(in, {}).layout.visual_indices(0);
  const at::Tensor evicted = visual.slice(0, 0, visual.numel(), 2);
  at::Tensor keep_mask = at::ones({s}, at::kBool);
  keep_mask.index_fill_(0, evicted, false);
  const at::Tensor keep = keep_mask.nonzero().view(-1);

  auto decode = [&](bool evict, bool mask_instead) {
    DecodeState state = m->new_state(1);
    LambdaHooks hooks;
    std::vector<bool> passes;
    hooks.kv = [&](KvSite& k) {
      passes.push_back(k.prefill);
      EXPECT_EQ(k.state, &state);
      if (!k.prefill) return;
      for (std::int64_t l = 0; l < m->num_layers(); ++l) {
        EXPECT_EQ(state.cache->length(l), s);
        if (evict) state.keep_keys(l, keep);
        if (mask_instead)
          state.key_masks[l] = state.key_masks[l].clone().index_fill_(1, evicted, 0);
      }
    };
    ForwardOptions o;
    o.hooks = &hooks;
    o.last_logits_only = true;
    m->forward_cached(in, o, state);
    std::vector<at::Tensor> logits;
    at::Tensor next = at::tensor({7, 8, 9}, at::kLong).view({1, 3});
    for (std::int64_t step = 0; step < 3; ++step) {
      ForwardInputs d;
      d.input_ids = next.narrow(1, step, 1);
      logits.push_back(m->forward_cached(d, o, state).logits);
    }
    EXPECT_EQ(passes, (std::vector<bool>{true, false, false, false}));
    const std::int64_t expected = (evict ? keep.numel() : s) + 3;
    for (std::int64_t l = 0; l < m->num_layers(); ++l) EXPECT_EQ(state.cache->length(l), expected);
    EXPECT_EQ(state.past_length(), s + 3);  // the logical length counts evicted tokens
    return at::cat(logits, 1);
  };
  const at::Tensor full = decode(false, false);
  const at::Tensor evicted_logits = decode(true, false);
  const at::Tensor masked_logits = decode(false, true);
  EXPECT_TRUE(test::all_close(evicted_logits, masked_logits, 1e-5, 1e-5, "logits"));
  EXPECT_FALSE(at::allclose(evicted_logits, full, 1e-4, 1e-4));
}

TEST(HookSitesGolden, KeepingBadIndicesIsAnError) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "text_only");
  DecodeState state = m->new_state(1);
  m->forward_cached(in, {}, state);
  const std::int64_t s = in.input_ids.size(1);
  EXPECT_THROW(state.keep_keys(0, at::tensor({1, 0}, at::kLong)), InputError);  // not increasing
  EXPECT_THROW(state.keep_keys(0, at::tensor({s}, at::kLong)), InputError);     // out of range
  EXPECT_THROW(state.keep_keys(99, at::tensor({0}, at::kLong)), InputError);    // no such layer
  state.keep_keys(0, at::arange(1, s, at::kLong));
  EXPECT_EQ(state.cache->length(0), s - 1);
  EXPECT_EQ(state.key_masks[0].size(1), s - 1);
  EXPECT_EQ(state.cache->length(1), s);
}

}  // namespace
}  // namespace glimpse::model
