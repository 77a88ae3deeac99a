// Inspection on the fixture models: attention probes against the full eager attention
// (ours and the reference's), attention maps against maps built by hand from the reference's
// attention probabilities, generated-token maps against a no-cache forward, and the logit lens.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>

#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/methods/inspect/logit_lens.h"
#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::methods::inspect {
namespace {

std::string case_file(const std::string& model, const std::string& name, const std::string& kind) {
  return test::fixtures_dir() + "/" + model + "/cases/" + name + "." + kind + ".safetensors";
}

std::unique_ptr<model::Model> load(const std::string& model) {
  return model::load_model(test::fixtures_dir() + "/" + model + "/model");
}

// Records every probe it receives; asks for fixed rows at every layer.
class RowProbe : public model::ForwardHooks {
 public:
  explicit RowProbe(std::vector<std::int64_t> rows) : rows_(std::move(rows)) {}
  std::vector<model::ProbeRequest> probes(const model::ProbeSite& site) override {
    if (site.stage != model::ProbeStage::Attention) return {};
    model::ProbeRequest request;
    if (site.prefill) request.rows = model::RowSelection{0, rows_, false};
    return {request};
  }
  void on_attention_probe(const model::AttentionProbe& p) override { received.push_back(p); }
  std::vector<model::AttentionProbe> received;

 private:
  std::vector<std::int64_t> rows_;
};

class AttentionProbeGolden : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
};

TEST_P(AttentionProbeGolden, ProbeRowsEqualOutputAttentionsRows) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model_name, case_name] = GetParam();
  auto m = load(model_name);
  const auto in = model::read_forward_inputs(case_file(model_name, case_name, "inputs"));
  const std::int64_t s = in.input_ids.size(1);
  const std::vector<std::int64_t> rows{0, s / 3, s / 2, s - 2, s - 1};
  RowProbe hooks(rows);
  model::ForwardOptions o;
  o.output_attentions = true;
  o.hooks = &hooks;
  const auto out = m->forward(in, o);
  const auto golden = core::SafetensorsFile::open(case_file(model_name, case_name, "forward"));
  ASSERT_EQ(static_cast<std::int64_t>(hooks.received.size()), m->num_layers());
  const at::Tensor idx = at::tensor(rows, at::TensorOptions().dtype(at::kLong));
  for (std::int64_t l = 0; l < m->num_layers(); ++l) {
    const auto& p = hooks.received[static_cast<std::size_t>(l)];
    EXPECT_EQ(p.layer, l);
    EXPECT_TRUE(p.prefill);
    EXPECT_EQ(p.rows, rows);
    const at::Tensor ours = out.attentions[l].index_select(2, idx);
    EXPECT_TRUE(at::allclose(p.probs, ours, 0, 1e-6))
        << model_name << " layer " << l << " max diff "
        << (p.probs - ours).abs().max().item<float>();
    const at::Tensor ref =
        core::load_tensor(golden, "attentions." + std::to_string(l)).index_select(2, idx);
    EXPECT_TRUE(at::allclose(p.probs, ref, 0, 1e-5)) << model_name << " layer " << l;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, AttentionProbeGolden,
                         ::testing::Values(std::make_pair("tiny-qwen2-vl", "two_images"),
                                           std::make_pair("tiny-qwen2-vl", "video"),
                                           std::make_pair("tiny-qwen2.5-vl", "image_a"),
                                           std::make_pair("tiny-qwen2.5-vl", "video"),
                                           std::make_pair("tiny-llava-1.5", "two_images")));

// The maps written by hand from attention probabilities A [heads, S, S] and the layout: for each
// visual token, the mean over `rows` of its column, put at (t, h, w) of its medium.
std::map<std::string, at::Tensor> expected_maps(const std::vector<at::Tensor>& attentions,
                                                const model::TokenLayout& layout,
                                                const std::vector<std::int64_t>& rows,
                                                const std::vector<MediaMap>& media) {
  std::map<std::string, at::Tensor> out;
  for (const auto& m : media) out[m.name()] = at::zeros_like(m.maps);
  const std::int64_t n = layout.length();
  for (std::int64_t k = 0; k < n; ++k) {
    const auto modality = layout.modality[0][k].item<int>();
    if (modality == 0) continue;
    const std::string name = (modality == 2 ? "video" : "image") +
                             std::to_string(layout.media_index[0][k].item<std::int64_t>());
    const auto t = layout.grid[0][k][0].item<std::int64_t>();
    const auto h = layout.grid[0][k][1].item<std::int64_t>();
    const auto w = layout.grid[0][k][2].item<std::int64_t>();
    for (std::size_t l = 0; l < attentions.size(); ++l) {
      at::Tensor col = at::zeros({attentions[l].size(1)});
      for (const auto r : rows) col += attentions[l][0].select(1, r).select(1, k);
      out.at(name)[static_cast<std::int64_t>(l)].select(1, t).select(1, h).select(1, w) +=
          col / static_cast<double>(rows.size());
    }
  }
  return out;
}

class AttentionMapGolden
    : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::string>> {};

TEST_P(AttentionMapGolden, MapsEqualTheReferenceAttentionLaidOnTheGrid) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model_name, case_name, query] = GetParam();
  auto m = load(model_name);
  const auto in = model::read_forward_inputs(case_file(model_name, case_name, "inputs"));
  const std::int64_t s = in.input_ids.size(1);
  AttentionMapOptions o;
  o.query = QuerySelector::parse(query);
  AttentionMap am(o);
  model::ForwardOptions fo;
  pipeline::Pipeline attached;
  attached.attach(am);
  fo.hooks = &attached;
  const auto out = m->forward(in, fo);
  const auto media = am.maps();
  std::vector<std::int64_t> rows;
  if (o.query.kind == QuerySelector::Kind::Last) {
    rows = {s - 1};
  } else {
    for (auto r = o.query.first; r <= o.query.last; ++r) rows.push_back(r);
  }
  EXPECT_EQ(am.query_indices(), rows);
  const auto golden = core::SafetensorsFile::open(case_file(model_name, case_name, "forward"));
  std::vector<at::Tensor> attentions;
  for (std::int64_t l = 0; l < m->num_layers(); ++l) {
    attentions.push_back(core::load_tensor(golden, "attentions." + std::to_string(l)));
  }
  const auto want = expected_maps(attentions, out.layout, rows, media);
  ASSERT_FALSE(media.empty());
  std::int64_t images = 0, videos = 0;
  for (const auto& mm : media) {
    if (mm.modality == model::Modality::Video) {
      ++videos;
    } else {
      ++images;
    }
    EXPECT_TRUE(at::allclose(mm.maps, want.at(mm.name()), 0, 1e-5))
        << mm.name() << " max diff " << (mm.maps - want.at(mm.name())).abs().max().item<float>();
    EXPECT_GT(mm.maps.sum().item<float>(), 0.0f);
  }
  // Media come from the inputs' grids: merged (t, h/2, w/2) for Qwen, 4 x 4 for tiny LLaVA.
  if (in.image_grid_thw.defined()) {
    EXPECT_EQ(images, in.image_grid_thw.size(0));
  }
  if (in.video_grid_thw.defined()) {
    EXPECT_EQ(videos, in.video_grid_thw.size(0));
    const auto& v = media.back();
    EXPECT_EQ(v.t, in.video_grid_thw[0][0].item<std::int64_t>());
    EXPECT_EQ(v.h, in.video_grid_thw[0][1].item<std::int64_t>() / 2);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, AttentionMapGolden,
    ::testing::Values(std::make_tuple("tiny-qwen2-vl", "two_images", "last"),
                      std::make_tuple("tiny-qwen2-vl", "video", "span:30-33"),
                      std::make_tuple("tiny-qwen2.5-vl", "two_images", "token:60"),
                      std::make_tuple("tiny-llava-1.5", "two_images", "span:50-53")));

TEST(InspectGolden, GeneratedQueryEqualsTheRowsOfANoCacheForward) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    auto m = load(name);
    const auto in = model::read_forward_inputs(case_file(name, "two_images", "inputs"));
    const std::int64_t s = in.input_ids.size(1);
    AttentionMapOptions o;
    o.query = QuerySelector::parse("generated");
    o.layers = {0, 2};
    o.heads = {1, 3};
    AttentionMap am(o);
    generate::GenerationConfig g;
    g.max_new_tokens = 4;
    generate::GenerateOptions options;
    pipeline::Pipeline attached;
    attached.attach(am);
    options.hooks = &attached;
    const auto result = generate::generate(*m, in, g, options);
    ASSERT_EQ(result.new_tokens.size(1), 4);
    EXPECT_EQ(am.query_indices(), (std::vector<std::int64_t>{s, s + 1, s + 2}));
    const auto media = am.maps();
    // The rows of the fed-back tokens in a plain forward over prompt + first three new tokens.
    model::ForwardInputs full = in;
    full.input_ids = result.sequences.narrow(1, 0, s + 3);
    full.attention_mask = at::ones_like(full.input_ids);
    model::ForwardOptions fo;
    fo.output_attentions = true;
    const auto out = m->forward(full, fo);
    const at::Tensor heads = at::tensor(std::vector<std::int64_t>{1, 3}, at::kLong);
    std::vector<at::Tensor> attentions;
    for (const auto l : {0, 2}) attentions.push_back(out.attentions[l].index_select(1, heads));
    const auto want = expected_maps(attentions, out.layout, {s, s + 1, s + 2}, media);
    for (const auto& mm : media) {
      EXPECT_TRUE(at::allclose(mm.maps, want.at(mm.name()), 0, 1e-5))
          << name << " " << mm.name() << " max diff "
          << (mm.maps - want.at(mm.name())).abs().max().item<float>();
    }
  }
}

TEST(InspectGolden, GeneratedQueryNeedsTwoNewTokens) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const auto in = model::read_forward_inputs(case_file("tiny-qwen2-vl", "image_a", "inputs"));
  AttentionMapOptions o;
  o.query = QuerySelector::parse("generated");
  AttentionMap am(o);
  generate::GenerationConfig g;
  g.max_new_tokens = 1;
  generate::GenerateOptions options;
  pipeline::Pipeline attached;
  attached.attach(am);
  options.hooks = &attached;
  generate::generate(*m, in, g, options);
  EXPECT_THROW(am.maps(), Error);
}

class LogitLensGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(LogitLensGolden, LastLayerEqualsTheModelLogits) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  auto m = load(name);
  const auto in = model::read_forward_inputs(case_file(name, "image_a", "inputs"));
  model::ForwardOptions o;
  o.output_hidden_states = true;
  const auto out = m->forward(in, o);
  const auto golden = core::SafetensorsFile::open(case_file(name, "image_a", "forward"));
  const at::Tensor ref_logits = core::load_tensor(golden, "logits");
  const std::int64_t s = in.input_ids.size(1);
  for (const std::int64_t pos : {s - 1, s / 2, std::int64_t{0}}) {
    const at::Tensor lens = logit_lens_logits(*m, out, pos);
    ASSERT_EQ(lens.sizes(), (at::IntArrayRef{m->num_layers(), m->vocab_size()}));
    EXPECT_TRUE(at::allclose(lens[-1], out.logits[0][pos], 0, 1e-5)) << pos;
    EXPECT_TRUE(at::allclose(lens[-1], ref_logits[0][pos], 1e-4, 1e-4)) << pos;
    // Intermediate layers: final norm then lm_head of the reference's hidden states.
    for (std::int64_t i = 1; i < m->num_layers(); ++i) {
      const at::Tensor h = core::load_tensor(golden, "hidden_states." + std::to_string(i))[0][pos];
      EXPECT_TRUE(at::allclose(lens[i - 1], m->logits_from_hidden(h, true), 1e-4, 1e-4)) << i;
      // ... and they are not the last layer's logits (the norm was applied, not skipped).
      EXPECT_FALSE(at::allclose(lens[i - 1], lens[-1], 1e-3, 1e-3));
    }
    // The reference's normed hidden_states[L] needs no second norm.
    const at::Tensor last =
        core::load_tensor(golden, "hidden_states." + std::to_string(m->num_layers()))[0][pos];
    EXPECT_TRUE(at::allclose(m->logits_from_hidden(last, false), ref_logits[0][pos], 1e-4, 1e-4));
  }
  const auto top = logit_lens(*m, out, s - 1, 5);
  ASSERT_EQ(static_cast<std::int64_t>(top.size()), m->num_layers());
  EXPECT_EQ(top.back().hidden_state, m->num_layers());
  EXPECT_EQ(top.back().top.size(), 5u);
  EXPECT_EQ(top.back().top[0].id, ref_logits[0][s - 1].argmax().item<std::int64_t>());
  EXPECT_GE(top.back().top[0].prob, top.back().top[1].prob);
  EXPECT_THROW(logit_lens(*m, out, s, 5), InputError);
  EXPECT_THROW(logit_lens(*m, m->forward(in, {}), 0, 5), InputError);
  // Hidden-state capture: reference names, the last layer's normed state plus the pre-norm one.
  const auto tensors = hidden_state_tensors(out, {0, m->num_layers() - 1});
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors[0].first, "hidden_states.1");
  EXPECT_EQ(tensors[1].first, "hidden_states." + std::to_string(m->num_layers()));
  EXPECT_EQ(tensors[2].first, "last_layer_output_prenorm");
  EXPECT_TRUE(
      at::allclose(tensors[0].second, core::load_tensor(golden, "hidden_states.1"), 1e-4, 1e-4));
  EXPECT_THROW(hidden_state_tensors(out, {m->num_layers()}), InputError);
}

INSTANTIATE_TEST_SUITE_P(Models, LogitLensGolden,
                         ::testing::Values("tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-1.5"));

}  // namespace
}  // namespace glimpse::methods::inspect
