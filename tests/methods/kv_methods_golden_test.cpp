// The KV-cache methods (issue 17; spec pruning_kv.md section 1) on the tiny Qwen2-VL fixture:
// a full budget changes nothing, the kept keys are the top of the official window score, decoding
// over the ragged cache equals decoding with the evicted keys masked, and the budget rules.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"
#include "method_cases.h"
#include "methods/kv/adakv.h"
#include "methods/kv/h2o.h"
#include "methods/kv/pyramidkv.h"
#include "methods/kv/sparsemm.h"
#include "methods/kv/streaming_llm.h"
#include "test_util.h"

namespace glimpse::methods::kv {
namespace {

using test::load_case;

std::unique_ptr<model::Model> tiny_qwen() {
  return model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
}

pipeline::Pipeline pipeline_of(const std::string& method) {
  return pipeline::Pipeline::from_json(R"({"methods": [)" + method + "]}", "test");
}

// The prefill logits and `steps` greedy decode steps' logits, with `hooks` on every pass.
struct Decoded {
  std::vector<at::Tensor> logits;
  model::DecodeState state;
};
Decoded decode(model::Model& m, const model::ForwardInputs& in, model::ForwardHooks* hooks,
               std::int64_t steps) {
  Decoded d;
  d.state = m.new_state(in.input_ids.size(0));
  model::ForwardOptions o;
  o.hooks = hooks;
  o.last_logits_only = true;
  d.logits.push_back(m.forward_cached(in, o, d.state).logits);
  for (std::int64_t i = 0; i < steps; ++i) {
    model::ForwardInputs step;
    step.input_ids = d.logits.back().select(1, -1).argmax(-1).view({-1, 1});
    d.logits.push_back(m.forward_cached(step, o, d.state).logits);
  }
  return d;
}

// A score file of `value` for every layer-head of the tiny model (3 layers x 4 heads).
std::string score_file(const std::string& name, const std::function<double(int, int)>& value) {
  nlohmann::json j;
  for (int l = 0; l < 3; ++l) {
    for (int h = 0; h < 4; ++h) {
      j[std::to_string(l) + "-" + std::to_string(h)] = {value(l, h), value(l, h)};
    }
  }
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << j.dump();
  return path;
}

TEST(KvMethodsGolden, FullBudgetKeepsEverythingBitIdentical) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const Decoded plain = decode(*m, in, nullptr, 4);
  const std::string zeros = score_file("zeros.json", [](int, int) { return 0.0; });
  for (const std::string knob : {R"("compression_ratio": 0)", R"("budget": 72)"}) {
    for (const std::string type :
         {"snapkv", "pyramidkv", "adakv", "sparsemm", "streaming_llm", "h2o"}) {
      const std::string extra = type == "sparsemm" ? R"(, "scores": ")" + zeros + "\"" : "";
      auto p = pipeline_of(R"({"type": ")" + type + "\", " + knob + extra + "}");
      const Decoded got = decode(*m, in, &p, 4);
      for (std::size_t i = 0; i < plain.logits.size(); ++i) {
        EXPECT_TRUE(at::equal(got.logits[i], plain.logits[i]))
            << type << " " << knob << " step " << i;
      }
      EXPECT_EQ(nlohmann::json::parse(got.state.kv_report()).at("backend"), "dense") << type;
    }
  }
}

// The official window score restated (SnapKVCluster.update_kv with SparseMM's GQA mean): eager
// attention of the last w rows summed, the mean over each KV head's query heads, avg_pool1d(5).
at::Tensor official_scores(const at::Tensor& attention, std::int64_t kv_heads, std::int64_t w) {
  const std::int64_t hq = attention.size(1), t = attention.size(3);
  const at::Tensor sum = attention[0].narrow(1, t - w, w).sum(1).narrow(1, 0, t - w);
  const at::Tensor grouped = sum.view({kv_heads, hq / kv_heads, t - w}).mean(1);
  return at::avg_pool1d(grouped.unsqueeze(0), {5}, {1}, {2})[0];
}

// `kept` (prompt columns of one head, the window included) is the window plus a top-k of
// `scores`: no dropped column scores above a kept one (up to rounding).
void expect_top_of(const at::Tensor& kept, const at::Tensor& scores, std::int64_t count,
                   std::int64_t t, std::int64_t w, const std::string& what) {
  const at::Tensor window = at::arange(t - w, t, at::kLong);
  ASSERT_EQ(kept.numel(), count + w) << what;
  EXPECT_TRUE(at::equal(kept.narrow(0, count, w), window)) << what;
  at::Tensor chosen = at::zeros({t - w}, at::kBool);
  chosen.index_fill_(0, kept.narrow(0, 0, count), true);
  if (count == 0 || count == t - w) return;
  const double low = scores.masked_select(chosen).min().item<double>();
  const double high = scores.masked_select(chosen.logical_not()).max().item<double>();
  EXPECT_GE(low, high - 1e-6) << what;
}

class KvSelectionGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(KvSelectionGolden, KeepsTheTopOfTheWindowScorePerHead) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string type = GetParam();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const std::int64_t t = in.input_ids.size(1), w = 4, budget = 20, layers = 3, kv_heads = 2;
  model::ForwardOptions eager;
  eager.output_attentions = true;
  const auto full = m->forward(in, eager);
  const std::string scores =
      score_file("skewed.json", [](int l, int h) { return l == 1 && h < 2 ? 1.0 : 0.01 * h; });
  std::string spec = R"({"type": ")" + type + R"(", "budget": 20, "window": 4)";
  if (type == "sparsemm") spec += R"(, "scores": ")" + scores + "\"";
  auto p = pipeline_of(spec + "}");
  const Decoded got = decode(*m, in, &p, 0);
  // The counts each method gives, restated.
  std::vector<std::vector<std::int64_t>> counts(layers);
  at::Tensor sparsemm_table;
  if (type == "sparsemm") {
    sparsemm_table = SparseMM::allocate(SparseMM::read_scores(scores), kv_heads, budget - w, 0.1);
  }
  for (std::int64_t l = 0; l < layers; ++l) {
    const at::Tensor s = official_scores(full.attentions[l], kv_heads, w);
    std::vector<std::int64_t>& c = counts[l];
    if (type == "snapkv") c.assign(kv_heads, budget - w);
    if (type == "pyramidkv")
      c.assign(kv_heads, PyramidKV::layer_count(l, layers, t, budget, w, 20));
    if (type == "adakv") c = AdaKV::allocate(s, budget - w, 0.2, true);
    if (type == "sparsemm") {
      for (std::int64_t g = 0; g < kv_heads; ++g)
        c.push_back(sparsemm_table[l][g].item<std::int64_t>());
    }
    const auto ragged = got.state.cache->view(l).ragged;
    ASSERT_TRUE(ragged) << type << " layer " << l;
    for (std::int64_t g = 0; g < kv_heads; ++g) {
      const std::int64_t n = std::min(c[g], t - w);
      const at::Tensor kept = ragged->slots.narrow(0, ragged->begin(0, g), ragged->length(0, g));
      expect_top_of(kept, s[g], n, t, w,
                    type + " layer " + std::to_string(l) + " head " + std::to_string(g));
    }
  }
  const auto report = nlohmann::json::parse(got.state.kv_report());
  EXPECT_EQ(report.at("backend"), "ragged");
  EXPECT_LT(report.at("bytes_held").get<std::int64_t>(),
            report.at("bytes_full").get<std::int64_t>());
}

INSTANTIATE_TEST_SUITE_P(Methods, KvSelectionGolden,
                         ::testing::Values("snapkv", "pyramidkv", "adakv", "sparsemm"));

// Masks, for one decode step after the prefill, the keys each KV head evicted (AddScores -inf on
// its query heads' last row): the dense equivalent of the ragged cache.
class EvictedMask : public model::ForwardHooks {
 public:
  EvictedMask(const model::DecodeState& state, std::int64_t t, std::int64_t heads)
      : state_(state), t_(t), heads_(heads) {}
  void on_attention(model::AttentionSite& site) override {
    const auto ragged = state_.cache->view(site.layer).ragged;
    const std::int64_t kv_heads = ragged->heads, rep = heads_ / kv_heads;
    for (std::int64_t g = 0; g < kv_heads; ++g) {
      at::Tensor evicted = at::ones({1, site.key_length}, at::kBool);
      evicted.narrow(1, t_, site.key_length - t_).fill_(false);
      evicted[0].index_fill_(0, ragged->slots.narrow(0, ragged->begin(0, g), ragged->length(0, g)),
                             false);
      model::AttentionEdit e;
      e.op = model::AttentionEdit::Op::AddScores;
      e.value = -INFINITY;
      for (std::int64_t r = 0; r < rep; ++r) e.heads.push_back(g * rep + r);
      e.rows = model::RowSelection::last_row();
      e.keys = evicted;
      site.edits.push_back(e);
    }
  }

 private:
  const model::DecodeState& state_;
  std::int64_t t_, heads_;
};

TEST(KvMethodsGolden, DecodingOverTheRaggedCacheEqualsMaskingTheEvictedKeys) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const std::int64_t t = in.input_ids.size(1);
  auto p = pipeline_of(R"({"type": "adakv", "compression_ratio": 0.6, "window": 4})");
  const Decoded got = decode(*m, in, &p, 1);
  // The same prompt plus the decoded token without a cache, the evicted keys masked for it.
  model::ForwardInputs longer = in;
  const at::Tensor next = got.logits[0].select(1, -1).argmax(-1).view({1, 1});
  longer.input_ids = at::cat({in.input_ids, next}, 1);
  longer.attention_mask = at::ones_like(longer.input_ids);
  EvictedMask mask(got.state, t, 4);
  model::ForwardOptions o;
  o.hooks = &mask;
  const at::Tensor want = m->forward(longer, o).logits.select(1, -1);
  const at::Tensor have = got.logits[1].select(1, -1);
  EXPECT_TRUE(at::allclose(have, want, 1e-5, 1e-5)) << (have - want).abs().max().item<double>();
  // And the eviction changed something: the unmasked forward differs.
  EXPECT_FALSE(at::allclose(have, m->forward(longer, {}).logits.select(1, -1), 1e-5, 1e-5));
  const auto report = nlohmann::json::parse(got.state.kv_report());
  std::int64_t kept = 0;
  for (const auto& layer : report.at("kept")) {
    for (const auto& n : layer) kept += n.get<std::int64_t>();
  }
  // int(67 * 0.4) = 26 per head on average (AdaKV moves them between heads and rounds each
  // head's share: at most one off per layer), plus the decoded token.
  EXPECT_LE(std::abs(kept - 3 * 2 * (26 + 1)), 3);
}

TEST(KvMethodsGolden, StreamingLlmHoldsSinksAndRecentTokensWhileDecoding) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const std::int64_t t = in.input_ids.size(1);
  auto p = pipeline_of(R"({"type": "streaming_llm", "budget": 16, "sinks": 4})");
  const Decoded got = decode(*m, in, &p, 3);
  for (std::int64_t l = 0; l < 3; ++l) {
    EXPECT_EQ(got.state.cache->length(l), 16);
    EXPECT_FALSE(got.state.cache->view(l).ragged);  // one index list: the cache stays dense
  }
  // The kept columns after the last step: the 4 sinks and the 12 newest of t + 3 slots.
  const at::Tensor kept = StreamingLLM::keep_ends(at::arange(t + 3, at::kLong), 4, 16);
  EXPECT_TRUE(at::equal(kept.narrow(0, 0, 4), at::arange(4, at::kLong)));
  EXPECT_TRUE(at::equal(kept.narrow(0, 4, 12), at::arange(t + 3 - 12, t + 3, at::kLong)));
  const auto& e = p.report().entries().at(0);
  EXPECT_EQ(e.numbers.at("cache_size"), 16);
}

TEST(KvMethodsGolden, PaddedBatchesCompressEachSequenceOnItsOwn) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "batch_left_pad");
  auto p = pipeline_of(R"({"type": "snapkv", "compression_ratio": 0.5, "window": 4})");
  const Decoded got = decode(*m, in, &p, 2);
  const at::Tensor real = in.attention_mask.sum(1);
  for (std::int64_t l = 0; l < 3; ++l) {
    const at::Tensor lengths = got.state.kv_lengths(l);  // [2, 2]
    for (std::int64_t b = 0; b < 2; ++b) {
      const std::int64_t t = real[b].item<std::int64_t>();
      EXPECT_EQ(lengths[b][0].item<std::int64_t>(), t / 2 + 2) << "layer " << l << " row " << b;
    }
  }
  // Each row decodes what it decodes alone with the same method.
  for (std::int64_t b = 0; b < 2; ++b) {
    auto alone = pipeline_of(R"({"type": "snapkv", "compression_ratio": 0.5, "window": 4})");
    const Decoded one =
        decode(*m, test::row_alone(in, b, m->config().get_int("image_token_id")), &alone, 2);
    for (std::size_t i = 0; i < one.logits.size(); ++i) {
      EXPECT_TRUE(at::allclose(got.logits[i][b], one.logits[i][0], 1e-4, 1e-4))
          << "row " << b << " step " << i;
    }
  }
}

TEST(KvMethodsBudget, AllocationsFollowTheOfficialFormulas) {
  // PyramidKV: layer 0 gets max, the last min, the mean is the base (spec 1.5 (e)).
  const std::int64_t layers = 28, t = 4000, c = 544, w = 32, base = c - w;
  std::int64_t sum = 0, last = 1 << 30;
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::int64_t n = PyramidKV::layer_count(l, layers, t, c, w, 20);
    EXPECT_LE(n, last);
    last = n;
    sum += n;
  }
  EXPECT_EQ(PyramidKV::layer_count(0, layers, t, c, w, 20), 2 * base - base / 20);
  EXPECT_NEAR(static_cast<double>(sum) / layers, base, 14.0);                  // integer steps
  EXPECT_EQ(PyramidKV::layer_count(5, layers, 2 * base - 1, c, w, 20), base);  // SnapKV regime
  // AdaKV: the heads share H_kv x base (floor 0), every head keeps at least the floor.
  at::manual_seed(3);
  const at::Tensor pooled = at::rand({4, 300});
  const auto free = AdaKV::allocate(pooled, 50, 0.0, false);
  EXPECT_EQ(free[0] + free[1] + free[2] + free[3], 200);
  for (const auto n : AdaKV::allocate(pooled, 50, 0.2, true)) EXPECT_GE(n, 10);
  // SparseMM: C = round(S_kv (base - m) L H_kv + m), S summed over each KV head's query heads.
  const at::Tensor scores =
      at::tensor({1.0, 3.0, 0.0, 4.0, 2.0, 0.0, 0.0, 0.0}, at::kDouble).view({2, 4});
  const at::Tensor table = SparseMM::allocate(scores, 2, 100, 0.1);
  const double remain = (100 - 10) * 2 * 2;
  const std::vector<double> share{4.0 / 10, 4.0 / 10, 2.0 / 10, 0.0};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(table.view({-1})[i].item<std::int64_t>(),
              static_cast<std::int64_t>(std::nearbyint(share[i] * remain + 10)));
  }
  EXPECT_TRUE(at::equal(SparseMM::allocate(at::zeros({2, 4}, at::kDouble), 2, 100, 0.1),
                        at::full({2, 2}, 100, at::kLong)));
  EXPECT_TRUE(at::equal(SparseMM::allocate(scores, 2, 100, 1.0), at::full({2, 2}, 100, at::kLong)));
}

TEST(KvMethodsBudget, BadBudgetsAndScoreFilesAreClearErrors) {
  auto config_error = [](const std::string& spec) {
    try {
      pipeline_of(spec);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(config_error(R"({"type": "snapkv", "compression_ratio": 0.5, "budget": 64})")
                .find("exactly one"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"type": "snapkv"})").find("exactly one"), std::string::npos);
  EXPECT_NE(config_error(R"({"type": "h2o_typo"})"), "no error");
  EXPECT_NE(config_error(R"({"type": "pyramidkv", "compression_ratio": -0.1})").find("[0, 1)"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"type": "adakv", "compression_ratio": 1})").find("[0, 1)"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"type": "snapkv", "budget": 32})").find("window"), std::string::npos);
  EXPECT_NE(config_error(R"({"type": "snapkv", "budget": 64, "windw": 8})").find("windw"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"type": "sparsemm", "budget": 64})").find("scores"),
            std::string::npos);
  // A score file for another model, and a malformed one.
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const std::string path = ::testing::TempDir() + "other.json";
  std::ofstream(path) << R"({"0-0": [1], "0-1": [1], "1-0": [1], "1-1": [1]})";
  auto p = pipeline_of(R"({"type": "sparsemm", "budget": 64, "scores": ")" + path + "\"}");
  EXPECT_THROW(p.bind(pipeline::MethodContext(*m)), ConfigError);
  const std::string bad = ::testing::TempDir() + "bad.json";
  std::ofstream(bad) << R"({"0-x": [1]})";
  EXPECT_THROW(pipeline_of(R"({"type": "sparsemm", "budget": 64, "scores": ")" + bad + "\"}"),
               FormatError);
  // A ratio that leaves no more than the window is refused when the prompt is known.
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  auto tight = pipeline_of(R"({"type": "snapkv", "compression_ratio": 0.95, "window": 8})");
  EXPECT_THROW(decode(*m, in, &tight, 0), InputError);
}

}  // namespace
}  // namespace glimpse::methods::kv

namespace glimpse::methods::kv {
namespace {

TEST(KvMethodsGolden, ContextCompressedOnceAnswersSeveralQuestionsFromForks) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  auto p = pipeline_of(R"({"type": "snapkv", "budget": 24, "window": 4})");
  // Query-agnostic (kvpress's pipeline): the context is compressed at its prefill; questions
  // appended to forks are not compressed and share the compressed context.
  generate::Session context(*m, &p);
  context.prefill(in);
  const std::int64_t held = context.state().cache->bytes_held();
  auto forks = context.fork(2);
  const std::vector<std::vector<std::int64_t>> questions{{11, 12, 13}, {21, 22}};
  std::vector<at::Tensor> answers;
  for (std::size_t i = 0; i < 2; ++i) answers.push_back(forks[i].append(questions[i]));
  EXPECT_FALSE(at::allclose(answers[0], answers[1]));
  for (std::int64_t l = 0; l < 3; ++l) {
    const auto shared = context.state().cache->view(l).ragged;
    ASSERT_TRUE(shared);
    for (auto& f : forks) {
      EXPECT_EQ(f.state().cache->view(l).ragged.get(), shared.get());  // not copied
      EXPECT_TRUE(at::equal(f.state().kv_lengths(l),
                            context.state().kv_lengths(l) + f.state().cache->view(l).keys.size(2)));
    }
  }
  // The family holds the compressed context once plus each fork's own tail.
  std::vector<const model::KVCache*> caches{context.state().cache.get()};
  std::int64_t tails = 0;
  for (auto& f : forks) {
    caches.push_back(f.state().cache.get());
    EXPECT_EQ(f.state().cache->bytes_shared(), held);
    tails += f.state().cache->bytes_held() - f.state().cache->bytes_shared();
  }
  EXPECT_EQ(model::kv_bytes_held(caches), held + tails);
  // A fork answers as a session that compressed the same context and appended the question.
  for (std::size_t i = 0; i < 2; ++i) {
    auto again = pipeline_of(R"({"type": "snapkv", "budget": 24, "window": 4})");
    generate::Session alone(*m, &again);
    alone.prefill(in);
    EXPECT_TRUE(at::equal(alone.append(questions[i]), answers[i])) << "question " << i;
  }
}

}  // namespace
}  // namespace glimpse::methods::kv

namespace glimpse::methods::kv {
namespace {

TEST(KvMethodsGolden, H2oKeepsTheRecentWindowAndTheHeaviestAccumulatedKeys) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  const std::int64_t t = in.input_ids.size(1), kv_heads = 2;
  auto p = pipeline_of(R"({"type": "h2o", "budget": 30, "recent_ratio": 0.5})");
  const Decoded got = decode(*m, in, &p, 0);
  // After the prefill: the attention every key got from every prompt row (eager), the GQA mean.
  model::ForwardOptions eager;
  eager.output_attentions = true;
  const auto full = m->forward(in, eager);
  for (std::int64_t l = 0; l < 3; ++l) {
    const at::Tensor a = full.attentions[l][0].sum(1);  // [Hq, T]
    const at::Tensor acc = a.view({kv_heads, a.size(0) / kv_heads, t}).mean(1);
    const auto ragged = got.state.cache->view(l).ragged;
    ASSERT_TRUE(ragged);
    for (std::int64_t g = 0; g < kv_heads; ++g) {
      const at::Tensor kept = ragged->slots.narrow(0, ragged->begin(0, g), ragged->length(0, g));
      expect_top_of(kept, acc[g].narrow(0, 0, t - 15), 15, t, 15,
                    "h2o layer " + std::to_string(l) + " head " + std::to_string(g));
    }
  }
  // The accumulated scores follow the keys (15 heavy + 15 recent per head).
  EXPECT_EQ(static_cast<const H2O&>(*p.methods()[0]).scores()[0].size(2), 30);
}

TEST(KvMethodsGolden, H2oWithoutHeavyHittersIsStreamingLlmWithoutSinks) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  const auto in = load_case("tiny-qwen2-vl", "two_images");
  auto h2o = pipeline_of(R"({"type": "h2o", "budget": 20, "recent_ratio": 1})");
  auto streaming = pipeline_of(R"({"type": "streaming_llm", "budget": 20, "sinks": 0})");
  const Decoded a = decode(*m, in, &h2o, 4), b = decode(*m, in, &streaming, 4);
  for (std::size_t i = 0; i < a.logits.size(); ++i) {
    EXPECT_TRUE(at::allclose(a.logits[i], b.logits[i], 1e-5, 1e-5)) << "step " << i;
  }
  for (std::int64_t l = 0; l < 3; ++l) {
    // The cache never grows past the budget, and holds the newest 20 slots.
    EXPECT_TRUE(at::equal(a.state.kv_lengths(l), at::full({1, 2}, 20, at::kLong)));
    const std::int64_t seen = in.input_ids.size(1) + 4;
    EXPECT_TRUE(at::equal(a.state.kept_slots(l)[0][1], at::arange(seen - 20, seen, at::kLong)));
  }
}

}  // namespace
}  // namespace glimpse::methods::kv

namespace glimpse::methods::kv {
namespace {

TEST(KvMethodsGolden, HalfTheKvOfA2kPromptHoldsHalfTheBytes) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = tiny_qwen();
  model::ForwardInputs in;
  at::manual_seed(11);
  in.input_ids = at::randint(0, 900, {1, 2048}, at::kLong);
  in.attention_mask = at::ones_like(in.input_ids);
  for (const std::string type : {"snapkv", "pyramidkv", "adakv", "h2o"}) {
    auto p = pipeline_of(R"({"type": ")" + type + R"(", "compression_ratio": 0.5})");
    const Decoded got = decode(*m, in, &p, 0);
    const auto report = nlohmann::json::parse(got.state.kv_report());
    const auto full = report.at("bytes_full").get<double>();
    const auto held = report.at("bytes_held").get<double>();
    EXPECT_LE(held, 0.55 * full) << type;
    EXPECT_GE(held, 0.45 * full) << type;
    std::int64_t kept = 0;
    for (const auto& layer : report.at("kept")) {
      for (const auto& n : layer) kept += n.get<std::int64_t>();
    }
    EXPECT_LE(std::abs(kept - 3 * 2 * 1024), 3) << type;  // AdaKV rounds each head's share
  }
}

}  // namespace
}  // namespace glimpse::methods::kv
