// The method context and the writable hook sites (issue 15) on the tiny fixture models: identity
// methods change nothing, an empty pipeline computes nothing, blocks.{i}.post replaces and exits
// (with the K/V fill of the skipped layers), blocks.{i}.attn edits, probes merge and come back
// sliced, reduced and before a layer's own pruning, every on_block_pre runs in order, and FastV,
// attention_map and logit_lens compose in one pipeline.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/methods/inspect/logit_lens_method.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"
#include "layers/decoder.h"
#include "layers/probe.h"
#include "methods/prune/fastv.h"
#include "test_util.h"

namespace glimpse::pipeline {
namespace {

using model::AttentionProbe;
using model::BlockPost;
using model::BlockPre;
using model::ForwardInputs;
using model::ForwardOptions;
using model::ForwardOutput;
using model::ProbeRequest;
using model::ProbeSite;

// A method made of lambdas, for the sites a test uses.
struct LambdaMethod : Method {
  std::function<std::optional<ProbeRequest>(const ProbeSite&)> want;
  std::function<void(const AttentionProbe&)> got;
  std::function<void(BlockPre&)> pre;
  std::function<void(model::AttentionSite&)> attn;
  std::function<void(model::MlpSite&)> mlp;
  std::function<void(BlockPost&)> post;
  std::function<void(at::Tensor&, bool)> logits;
  std::function<void(model::VisionOut&)> vision;

  std::string type() const override { return "lambda"; }
  void report(Report&) const override {}
  std::optional<ProbeRequest> probe(const ProbeSite& s) override {
    return want ? want(s) : std::nullopt;
  }
  void on_attention_probe(const AttentionProbe& p) override {
    if (got) got(p);
  }
  void on_block_pre(BlockPre& b) override {
    if (pre) pre(b);
  }
  void on_attention(model::AttentionSite& s) override {
    if (attn) attn(s);
  }
  void on_mlp(model::MlpSite& m) override {
    if (mlp) mlp(m);
  }
  void on_block_post(BlockPost& b) override {
    if (post) post(b);
  }
  void on_logits(at::Tensor& l, bool prefill) override {
    if (logits) logits(l, prefill);
  }
  void on_vision_out(model::VisionOut& v) override {
    if (vision) vision(v);
  }
};

std::unique_ptr<model::Model> load(const std::string& name) {
  return model::load_model(test::fixtures_dir() + "/" + name + "/model");
}

ForwardInputs load_case(const std::string& model, const std::string& name) {
  return model::read_forward_inputs(test::fixtures_dir() + "/" + model + "/cases/" + name +
                                    ".inputs.safetensors");
}

ForwardOutput run(model::Model& m, const ForwardInputs& in, model::ForwardHooks* hooks,
                  bool hidden = false, bool attentions = false) {
  ForwardOptions o;
  o.hooks = hooks;
  o.output_hidden_states = hidden;
  o.output_attentions = attentions;
  return m.forward(in, o);
}

at::Tensor idx(const std::vector<std::int64_t>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong));
}

class SitesGolden : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(SitesGolden, IdentityMethodsAtEverySiteChangeNothing) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [name, case_name] = GetParam();
  auto m = load(name);
  const ForwardInputs in = load_case(name, case_name);
  const ForwardOutput base = run(*m, in, nullptr);

  // Every site read, a probe taken at every layer and stage, nothing written.
  LambdaMethod id;
  std::int64_t calls = 0;
  id.want = [](const ProbeSite&) { return ProbeRequest{}; };
  id.got = [&](const AttentionProbe&) { ++calls; };
  id.pre = [&](BlockPre& b) { b.hidden = b.hidden.clone(); };
  id.attn = [&](model::AttentionSite& s) {
    // A ScaleOutput of exactly 1 is a no-op in every dtype.
    s.edits.push_back(
        {model::AttentionEdit::Op::ScaleOutput, 1.0, {}, model::RowSelection::every_row(), {}});
  };
  id.mlp = [](model::MlpSite& s) { s.output = s.output.clone(); };
  id.post = [](BlockPost& b) { b.hidden = b.hidden.clone(); };
  id.logits = [](at::Tensor&, bool) {};
  Pipeline p;
  p.attach(id);
  p.bind(MethodContext(*m));
  const ForwardOutput out = run(*m, in, &p);
  EXPECT_TRUE(at::equal(out.logits, base.logits));
  EXPECT_EQ(calls, 2 * m->num_layers());  // both stages at every layer
  EXPECT_EQ(out.hook_stats.probes, 2 * m->num_layers());
  EXPECT_EQ(out.hook_stats.edits, m->num_layers());
  EXPECT_EQ(out.hook_stats.exit_layer, -1);

  // Generation through the cache: the same ids.
  generate::GenerationConfig g;
  g.max_new_tokens = 4;
  generate::GenerateOptions plain, hooked;
  hooked.hooks = &p;
  EXPECT_TRUE(at::equal(generate::generate(*m, in, g, plain).sequences,
                        generate::generate(*m, in, g, hooked).sequences));
}

TEST_P(SitesGolden, AnEmptyPipelineIsNeverCalledAndComputesNothing) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [name, case_name] = GetParam();
  auto m = load(name);
  const ForwardInputs in = load_case(name, case_name);
  // An inactive hooks object is skipped by the engine: no site is called at all.
  struct Counting : model::ForwardHooks {
    std::int64_t calls = 0;
    bool active() const override { return false; }
    std::vector<ProbeRequest> probes(const ProbeSite&) override {
      ++calls;
      return {ProbeRequest{}};
    }
    void on_block_pre(BlockPre&) override { ++calls; }
    void on_block_post(BlockPost&) override { ++calls; }
    void on_attention(model::AttentionSite&) override { ++calls; }
  } counting;
  const ForwardOutput base = run(*m, in, nullptr);
  const ForwardOutput with_counting = run(*m, in, &counting);
  EXPECT_EQ(counting.calls, 0);
  Pipeline empty;
  EXPECT_FALSE(empty.active());
  const ForwardOutput with_empty = run(*m, in, &empty);
  for (const auto* o : {&with_counting, &with_empty}) {
    EXPECT_TRUE(at::equal(o->logits, base.logits));
    EXPECT_EQ(o->hook_stats.probes, 0);
    EXPECT_EQ(o->hook_stats.probe_elements, 0);
    EXPECT_EQ(o->hook_stats.edits, 0);
  }
}

TEST_P(SitesGolden, PostReplacesTheHiddenStateAndExits) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [name, case_name] = GetParam();
  auto m = load(name);
  const ForwardInputs in = load_case(name, case_name);
  const std::int64_t layers = m->num_layers();
  const MethodContext ctx(*m);
  const ForwardOutput plain = run(*m, in, nullptr, /*hidden=*/true);

  // Replacing the last layer's output: the logits are the head over the replacement.
  LambdaMethod twice;
  at::Tensor replaced;
  twice.post = [&](BlockPost& b) {
    if (b.layer != layers - 1) return;
    b.hidden = b.hidden * 2;
    replaced = b.hidden;
  };
  Pipeline p1;
  p1.attach(twice);
  const ForwardOutput out1 = run(*m, in, &p1);
  EXPECT_TRUE(at::allclose(out1.logits, ctx.logits_from_hidden(replaced, layers - 1), 1e-5, 1e-5));
  EXPECT_FALSE(at::allclose(out1.logits, plain.logits));

  // An exit after layer 0: the logits are the lens of hidden state 1, the rest is reported.
  LambdaMethod exit;
  exit.post = [](BlockPost& b) { b.exit = b.layer == 0; };
  Pipeline p2;
  p2.attach(exit);
  const ForwardOutput out2 = run(*m, in, &p2, /*hidden=*/true);
  EXPECT_EQ(out2.hook_stats.exit_layer, 0);
  EXPECT_EQ(out2.hook_stats.exit_fill_flops, 0);  // no cache, nothing to fill
  ASSERT_EQ(static_cast<std::int64_t>(out2.hidden_states.size()), layers + 1);
  EXPECT_TRUE(at::equal(out2.logits, ctx.logits_from_hidden(plain.hidden_states[1], 0)));
}

INSTANTIATE_TEST_SUITE_P(Cases, SitesGolden,
                         ::testing::Values(std::make_pair("tiny-qwen2-vl", "image_a"),
                                           std::make_pair("tiny-qwen2.5-vl", "batch_left_pad"),
                                           std::make_pair("tiny-llava-1.5", "image_a")));

// RMSNorm as the reference writes it (fp32 variance, cast back, scale).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  const at::Tensor f = x.to(at::kFloat);
  return (f * at::rsqrt(f.pow(2).mean(-1, true) + eps)).to(x.scalar_type()) * w;
}

TEST(SitesGoldenCache, AnExitFillsTheSkippedLayersKvFromTheExitHiddenState) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  const MethodContext ctx(*m);
  const double eps = m->config().get_float("rms_norm_eps");
  const std::int64_t layers = m->num_layers(), s = in.input_ids.size(1);
  at::Tensor exit_hidden;
  LambdaMethod exit;
  exit.post = [&](BlockPost& b) {
    if (b.layer != 0 || !b.prefill) return;
    b.exit = true;
    exit_hidden = b.hidden;
  };
  Pipeline p;
  p.attach(exit);
  model::DecodeState state = m->new_state(1);
  ForwardOptions o;
  o.hooks = &p;
  const ForwardOutput out = m->forward_cached(in, o, state);
  EXPECT_EQ(out.hook_stats.exit_layer, 0);
  EXPECT_DOUBLE_EQ(out.hook_stats.exit_fill_flops,
                   static_cast<double>(layers - 1) * ctx.shape().kv_fill_flops(s));
  const auto& shape = ctx.shape();
  for (std::int64_t j = 1; j < layers; ++j) {
    const std::string l = "model.layers." + std::to_string(j) + ".";
    // Values carry no RoPE: v_proj(input_layernorm(h_exit)), computed from the weights here.
    const at::Tensor h = rms_norm(exit_hidden, ctx.weight(l + "input_layernorm.weight"), eps);
    const at::Tensor v = at::linear(h, ctx.weight(l + "self_attn.v_proj.weight"),
                                    ctx.weight(l + "self_attn.v_proj.bias"))
                             .view({1, s, shape.num_kv_heads, shape.head_dim})
                             .transpose(1, 2);
    const at::Tensor cached = state.cache->get(j).second;
    ASSERT_EQ(cached.sizes(), v.sizes()) << "layer " << j;
    EXPECT_TRUE(at::allclose(cached, v, 1e-5, 1e-5)) << "layer " << j;
    EXPECT_EQ(state.kv_lengths(j).min().item<std::int64_t>(), s);
  }
  // Decoding goes on through every layer.
  ForwardInputs step;
  step.input_ids = out.logits.select(1, -1).argmax(-1).view({1, 1});
  const ForwardOutput next = m->forward_cached(step, {}, state);
  EXPECT_TRUE(at::isfinite(next.logits).all().item<bool>());
  EXPECT_EQ(state.cache->length(layers - 1), s + 1);
}

// The eager attention of one (head, row) with an edit applied, written here from the formula.
TEST(AttentionEdits, EditedRowsEqualTheEagerFormulaAndTheRestStaysFast) {
  at::manual_seed(3);
  const std::int64_t b = 2, hq = 4, hkv = 2, s = 5, t = 7, d = 8;
  const at::Tensor q = at::randn({b, hq, s, d}), k = at::randn({b, hkv, t, d}),
                   v = at::randn({b, hkv, t, d});
  at::Tensor key_mask = at::ones({b, t}, at::TensorOptions().dtype(at::kLong));
  key_mask[1][0] = 0;  // padding of the second sequence
  const at::Tensor mask = layers::causal_mask(key_mask, s, at::kFloat);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor out = layers::attention(q, k, v, scale, mask, /*causal=*/true);
  const at::Tensor fast = out.clone();
  at::Tensor region = at::zeros({b, t}, at::TensorOptions().dtype(at::kBool));
  region.narrow(1, 2, 3).fill_(true);
  using Op = model::AttentionEdit::Op;
  std::vector<model::AttentionEdit> edits{
      {Op::ScaleScores, 0.5, {1}, model::RowSelection{2, {}, false}, region},
      {Op::AddScores, -1e30, {2}, model::RowSelection{0, {0, 4}, false}, region},
      {Op::SetScores, 0.0, {3}, model::RowSelection::every_row(), {}},
      {Op::ScaleOutput, 2.0, {0}, model::RowSelection{0, {1}, false}, {}}};
  layers::apply_attention_edits(out, q, k, v, mask, edits, "test");

  for (std::int64_t bi = 0; bi < b; ++bi) {
    for (std::int64_t h = 0; h < hq; ++h) {
      for (std::int64_t r = 0; r < s; ++r) {
        at::Tensor sc = at::matmul(k[bi][h / 2], q[bi][h][r]) * scale;  // [T]
        const at::Tensor reg = region[bi];
        bool edited = false;
        if (h == 1 && r >= s - 2) {
          sc = at::where(reg, sc * 0.5, sc);
          edited = true;
        }
        if (h == 2 && (r == 0 || r == 4)) {
          sc = at::where(reg, sc - 1e30, sc);
          edited = true;
        }
        sc = sc + mask[bi][0][r];
        if (h == 3) {
          sc = at::zeros_like(sc);  // after the mask: uniform over every key (visual-head maskout)
          edited = true;
        }
        at::Tensor want = at::matmul(at::softmax(sc, -1), v[bi][h / 2]);
        if (h == 0 && r == 1) want = fast[bi][r][h] * 2;
        const at::Tensor got = out[bi][r][h];
        EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << bi << " " << h << " " << r;
        if (!edited && !(h == 0 && r == 1)) {
          EXPECT_TRUE(at::equal(got, fast[bi][r][h]));
        }
      }
    }
  }
  // A bad edit names the site.
  std::vector<model::AttentionEdit> bad{{Op::ScaleOutput, 1.0, {7}, {}, {}}};
  EXPECT_THROW(layers::apply_attention_edits(out, q, k, v, mask, bad, "blocks.0.attn"), InputError);
}

TEST(AttentionEdits, AnEditThroughTheModelChangesTheLogitsAndIsCounted) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  const ForwardOutput base = run(*m, in, nullptr);
  LambdaMethod silence;
  silence.attn = [](model::AttentionSite& s) {
    if (s.layer == 1) {
      s.edits.push_back({model::AttentionEdit::Op::ScaleOutput,
                         0.0,
                         {0, 1},
                         model::RowSelection::every_row(),
                         {}});
    }
  };
  Pipeline p;
  p.attach(silence);
  const ForwardOutput out = run(*m, in, &p);
  EXPECT_EQ(out.hook_stats.edits, 1);
  EXPECT_FALSE(at::allclose(out.logits, base.logits))
      << (out.logits - base.logits).abs().max().item<float>();
}

TEST(Probes, RequestsMergeAndEachMethodGetsItsOwnRowsAndHeads) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  const std::int64_t s = in.input_ids.size(1);
  const std::int64_t layers = m->num_layers();
  // A: rows {0, 3} of heads {1, 2}; B: the last two rows of every head, as scores.
  LambdaMethod a, b, c;
  std::vector<AttentionProbe> got_a, got_b, got_c;
  a.want = [](const ProbeSite& site) -> std::optional<ProbeRequest> {
    if (site.stage != model::ProbeStage::Attention) return std::nullopt;
    ProbeRequest r;
    r.rows = model::RowSelection{0, {3, 0}, false};
    r.heads = {1, 2};
    return r;
  };
  b.want = [](const ProbeSite& site) -> std::optional<ProbeRequest> {
    if (site.stage != model::ProbeStage::Attention) return std::nullopt;
    ProbeRequest r;
    r.rows = model::RowSelection{2, {}, false};
    return r;
  };
  // C: the same rows as B, but summed over rows and averaged over heads in the kernel.
  c.want = [](const ProbeSite& site) -> std::optional<ProbeRequest> {
    if (site.stage != model::ProbeStage::Attention) return std::nullopt;
    ProbeRequest r;
    r.rows = model::RowSelection{2, {}, false};
    r.over_rows = model::ProbeReduce::Sum;
    r.over_heads = model::ProbeReduce::Mean;
    return r;
  };
  a.got = [&](const AttentionProbe& p) { got_a.push_back(p); };
  b.got = [&](const AttentionProbe& p) { got_b.push_back(p); };
  c.got = [&](const AttentionProbe& p) { got_c.push_back(p); };
  Pipeline p;
  p.attach(a);
  p.attach(b);
  p.attach(c);
  const ForwardOutput out = run(*m, in, &p, false, /*attentions=*/true);
  ASSERT_EQ(static_cast<std::int64_t>(got_a.size()), layers);
  ASSERT_EQ(static_cast<std::int64_t>(got_b.size()), layers);
  ASSERT_EQ(static_cast<std::int64_t>(got_c.size()), layers);
  // A and B share one computation per layer; C's reduction is its own.
  EXPECT_EQ(out.hook_stats.probes, 2 * layers);
  for (std::int64_t l = 0; l < layers; ++l) {
    const at::Tensor full = out.attentions[static_cast<std::size_t>(l)];  // [1, H, S, S]
    const auto& pa = got_a[static_cast<std::size_t>(l)];
    EXPECT_EQ(pa.rows, (std::vector<std::int64_t>{0, 3}));
    EXPECT_EQ(pa.heads, (std::vector<std::int64_t>{1, 2}));
    const at::Tensor want_a = full.index_select(2, idx({0, 3})).index_select(1, idx({1, 2}));
    EXPECT_TRUE(at::allclose(pa.probs, want_a, 0, 1e-6)) << "layer " << l;
    const auto& pb = got_b[static_cast<std::size_t>(l)];
    EXPECT_EQ(pb.rows, (std::vector<std::int64_t>{s - 2, s - 1}));
    const at::Tensor want_b = full.narrow(2, s - 2, 2);
    EXPECT_TRUE(at::allclose(pb.probs, want_b, 0, 1e-6)) << "layer " << l;
    const auto& pc = got_c[static_cast<std::size_t>(l)];
    ASSERT_EQ(pc.probs.sizes(), (at::IntArrayRef{1, 1, 1, s}));
    EXPECT_TRUE(at::allclose(pc.probs, want_b.sum(2, true).mean(1, true), 1e-6, 1e-6));
  }
}

TEST(Probes, ScoresAreThePreSoftmaxRowsAndBeforeBlockEqualsTheLayerWithoutPruning) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  std::vector<AttentionProbe> scores, probs, before;
  LambdaMethod a;
  a.want = [](const ProbeSite& site) -> std::optional<ProbeRequest> {
    ProbeRequest r;
    r.rows = model::RowSelection{3, {}, false};
    if (site.stage == model::ProbeStage::Attention) r.value = model::ProbeValue::Scores;
    return r;
  };
  a.got = [&](const AttentionProbe& p) {
    (p.stage == model::ProbeStage::Attention ? scores : before).push_back(p);
  };
  LambdaMethod b;
  b.want = [](const ProbeSite& site) -> std::optional<ProbeRequest> {
    if (site.stage != model::ProbeStage::Attention) return std::nullopt;
    ProbeRequest r;
    r.rows = model::RowSelection{3, {}, false};
    return r;
  };
  b.got = [&](const AttentionProbe& p) { probs.push_back(p); };
  Pipeline p;
  p.attach(a);
  p.attach(b);
  run(*m, in, &p);
  ASSERT_EQ(scores.size(), probs.size());
  ASSERT_EQ(before.size(), probs.size());
  for (std::size_t l = 0; l < probs.size(); ++l) {
    EXPECT_EQ(scores[l].value, model::ProbeValue::Scores);
    EXPECT_TRUE(at::allclose(at::softmax(scores[l].probs, -1), probs[l].probs, 0, 1e-6));
    EXPECT_TRUE(at::allclose(before[l].probs, probs[l].probs, 0, 1e-6)) << "layer " << l;
  }
}

// Keeps every other visual token of what it sees.
std::unique_ptr<LambdaMethod> halving(std::int64_t layer, std::vector<std::int64_t>* seen) {
  auto m = std::make_unique<LambdaMethod>();
  m->pre = [layer, seen](BlockPre& b) {
    if (!b.prefill || b.layer != layer) return;
    seen->push_back(b.layout->length());
    const at::Tensor visual = b.layout->visual_indices(0);
    at::Tensor keep = b.layout->modality[0].eq(0);
    keep.index_fill_(0, visual.index_select(0, at::arange(0, visual.numel(), 2, at::kLong)), true);
    b.keep = keep.nonzero().view({-1});
  };
  return m;
}

TEST(BlockPreChain, EveryMethodRunsAndSeesTheKeepOfThoseBeforeIt) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  std::vector<std::int64_t> seen;
  Pipeline two;
  two.add(halving(1, &seen));
  two.add(halving(1, &seen));
  const ForwardOutput chained = run(*m, in, &two);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_LT(seen[1], seen[0]);  // the second saw the first's keep

  // The composed keep, given at once, gives the same logits bitwise.
  const at::Tensor kept = chained.layout.original_index[0];
  LambdaMethod once;
  once.pre = [&](BlockPre& b) {
    if (b.prefill && b.layer == 1) b.keep = kept;
  };
  Pipeline one;
  one.attach(once);
  const ForwardOutput direct = run(*m, in, &one);
  EXPECT_TRUE(at::equal(direct.logits, chained.logits));
  const std::int64_t n0 = run(*m, in, nullptr).layout.modality[0].ne(0).sum().item<std::int64_t>();
  const std::int64_t n1 = (n0 + 1) / 2, n2 = (n1 + 1) / 2;
  EXPECT_EQ(seen[0] - seen[1], n0 - n1);
  EXPECT_EQ(chained.layout.length(), seen[0] - n0 + n2);
}

TEST(Composition, FastVAttentionMapAndLogitLensReportAtLowerLayersWhatTheyReportAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = load("tiny-qwen2-vl");
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  const std::int64_t layers = m->num_layers(), k = 2;
  auto make_map = [] {
    methods::inspect::AttentionMapOptions o;  // every layer and head, the last row
    return std::make_unique<methods::inspect::AttentionMap>(o);
  };
  auto make_lens = [] {
    return std::make_unique<methods::inspect::LogitLens>(std::vector<std::int64_t>{}, -1, 5);
  };
  // Alone.
  auto map_alone = make_map();
  auto lens_alone = make_lens();
  auto fastv_alone = std::make_unique<methods::prune::FastV>(k, 0.5);
  for (Method* method :
       std::vector<Method*>{map_alone.get(), lens_alone.get(), fastv_alone.get()}) {
    Pipeline p;
    p.attach(*method);
    p.bind(MethodContext(*m));
    run(*m, in, &p);
  }
  // Together, FastV first.
  auto map = make_map();
  auto lens = make_lens();
  auto fastv = std::make_unique<methods::prune::FastV>(k, 0.5);
  Pipeline p;
  p.attach(*fastv);
  p.attach(*map);
  p.attach(*lens);
  p.bind(MethodContext(*m));
  const ForwardOutput out = run(*m, in, &p);
  EXPECT_TRUE(at::equal(fastv->kept(), fastv_alone->kept()));
  const auto maps = map->maps(), maps_alone = map_alone->maps();
  const std::int64_t kept_visual = out.layout.modality[0].ne(0).sum().item<std::int64_t>();
  ASSERT_EQ(maps.size(), maps_alone.size());
  const at::Tensor lens_logits = lens->logits(), lens_alone_logits = lens_alone->logits();
  for (std::int64_t l = 0; l < layers; ++l) {
    for (std::size_t i = 0; i < maps.size(); ++i) {
      const at::Tensor got = maps[i].maps[l], alone = maps_alone[i].maps[l];
      if (l < k) {
        EXPECT_TRUE(at::equal(got, alone)) << "layer " << l;
      } else {
        // Over the kept tokens: the pruned cells get nothing, the kept ones carry the mass.
        const std::int64_t cells = got.size(1) * got.size(2) * got.size(3);
        const std::int64_t zero = got[0].eq(0).sum().item<std::int64_t>();
        EXPECT_EQ(zero, cells - kept_visual) << "layer " << l;
      }
    }
    if (l < k) {
      EXPECT_TRUE(at::equal(lens_logits[l], lens_alone_logits[l])) << "layer " << l;
    }
  }
  // The lens of the last layer is the model's logits.
  EXPECT_TRUE(at::allclose(lens_logits[layers - 1],
                           out.logits[0].select(0, -1).to(at::kFloat).unsqueeze(0), 1e-5, 1e-5));
}

TEST(MethodContextTest, WeightsHeadForwardAndWhatIsMissing) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string dir = test::fixtures_dir() + "/tiny-qwen2-vl/model";
  auto m = model::load_model(dir);
  const MethodContext ctx(*m);
  const ForwardInputs in = load_case("tiny-qwen2-vl", "image_a");
  // A weight by state-dict name is the checkpoint's tensor.
  const auto checkpoint = core::Checkpoint::open(dir);
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  EXPECT_TRUE(at::equal(ctx.weight(name), core::load_tensor(checkpoint, name, at::kFloat)));
  EXPECT_FALSE(m->weight_names().empty());
  EXPECT_THROW(ctx.weight("model.layers.99.mlp.down_proj.weight"), InputError);
  // The head over the last layer's output is the model's logits; an extra pass is a forward.
  const ForwardOutput plain = run(*m, in, nullptr, /*hidden=*/true);
  EXPECT_TRUE(
      at::allclose(ctx.logits_from_hidden(plain.last_layer_output_prenorm, m->num_layers() - 1),
                   plain.logits, 1e-6, 1e-6));
  EXPECT_TRUE(at::equal(ctx.forward(in).logits, plain.logits));
  EXPECT_THROW(ctx.logits_from_hidden(plain.last_layer_output_prenorm, m->num_layers()),
               InputError);
  EXPECT_THROW(ctx.logits_from_hidden(at::zeros({1, 3}), 0), InputError);
  EXPECT_FALSE(ctx.has_processor());
  EXPECT_THROW(ctx.processor(), Error);
  EXPECT_THROW(ctx.session(), Error);
  // Binding checks a method's layers against the model.
  Pipeline p = Pipeline::from_json(R"({"methods": [{"type": "fastv", "layer": 9}]})", "p");
  EXPECT_THROW(p.bind(ctx), ConfigError);
  Pipeline q =
      Pipeline::from_json(R"({"methods": [{"type": "logit_lens", "layers": [0, 9]}]})", "q");
  EXPECT_THROW(q.bind(ctx), ConfigError);
}

}  // namespace
}  // namespace glimpse::pipeline
