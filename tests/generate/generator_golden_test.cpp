// The Generator on the tiny fixture models: the repetition penalty of a real Qwen2-VL
// generation_config.json against a restatement of the reference's semantics over uncached
// forwards; seeded sampling is reproducible; top_k 1 sampling is greedy.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::generate {
namespace {

model::ForwardInputs case_inputs(const std::string& model, const std::string& name) {
  return model::read_forward_inputs(test::fixtures_dir() + "/" + model + "/cases/" + name +
                                    ".inputs.safetensors");
}

// Greedy search with RepetitionPenaltyLogitsProcessor restated (transformers 4.50
// logits_process.py): every distinct id of the sequence so far has its logit divided by the
// penalty when positive, multiplied when negative; each step is a full uncached forward over
// the whole sequence, so no cache, session or processor of glimpse is involved.
std::vector<std::int64_t> penalised_greedy(model::Model& m, model::ForwardInputs in, double penalty,
                                           int steps) {
  std::vector<std::int64_t> ids(in.input_ids.data_ptr<std::int64_t>(),
                                in.input_ids.data_ptr<std::int64_t>() + in.input_ids.numel());
  const std::size_t prompt = ids.size();
  for (int i = 0; i < steps; ++i) {
    in.input_ids = at::tensor(ids, at::kLong).view({1, -1});
    in.attention_mask = at::Tensor();
    const at::Tensor logits = m.forward(in, {}).logits[0][-1].to(at::kFloat).contiguous();
    std::vector<float> s(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    for (const auto t : std::set<std::int64_t>(ids.begin(), ids.end())) {
      s[t] = s[t] < 0 ? s[t] * static_cast<float>(penalty) : s[t] / static_cast<float>(penalty);
    }
    ids.push_back(std::max_element(s.begin(), s.end()) - s.begin());  // the first maximum
  }
  return std::vector<std::int64_t>(ids.begin() + prompt, ids.end());
}

TEST(GeneratorGolden, RepetitionPenaltyFollowsTheReferenceSemantics) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    auto m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
    model::ForwardInputs in = case_inputs(name, "image_a");
    in.input_ids = in.input_ids.to(at::kLong).contiguous();
    GenerationConfig g;  // no eos: eight tokens
    g.max_new_tokens = 8;
    const at::Tensor plain = generate(*m, in, g).new_tokens[0];
    g.repetition_penalty = 1.3;
    const at::Tensor ids = generate(*m, in, g).new_tokens[0].contiguous();
    const auto expected = penalised_greedy(*m, in, 1.3, 8);
    EXPECT_EQ(std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                        ids.data_ptr<std::int64_t>() + ids.numel()),
              expected)
        << name;
    // The tiny random models repeat themselves: the penalty must change the answer.
    EXPECT_FALSE(at::equal(plain, ids)) << name;
  }
}

TEST(GeneratorGolden, QwenGenerationConfigSamplingIsTheGreedyOfPenalisedLogits) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  model::ForwardInputs in = case_inputs("tiny-qwen2-vl", "image_a");
  in.input_ids = in.input_ids.to(at::kLong).contiguous();
  // Qwen2-VL-2B-Instruct's generation_config.json: do_sample with top_k 1 leaves one token.
  GenerationConfig g;
  g.max_new_tokens = 8;
  g.do_sample = true;
  g.repetition_penalty = 1.05;
  g.temperature = 0.1;
  g.top_k = 1;
  g.top_p = 0.001;
  for (const std::uint64_t seed : {0ull, 7ull}) {
    g.seed = seed;
    const at::Tensor ids = generate(*m, in, g).new_tokens[0].contiguous();
    EXPECT_EQ(std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                        ids.data_ptr<std::int64_t>() + ids.numel()),
              penalised_greedy(*m, in, 1.05, 8));
  }
}

TEST(GeneratorGolden, SeededSamplingIsReproducible) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const model::ForwardInputs in = case_inputs("tiny-qwen2-vl", "image_a");
  GenerationConfig g;
  g.max_new_tokens = 12;
  g.do_sample = true;
  g.temperature = 1.5;
  g.top_k = 0;
  g.seed = 3;
  const at::Tensor a = generate(*m, in, g).new_tokens;
  EXPECT_TRUE(at::equal(generate(*m, in, g).new_tokens, a));
  bool differs = false;
  for (std::uint64_t seed = 4; seed < 8 && !differs; ++seed) {
    g.seed = seed;
    differs = !at::equal(generate(*m, in, g).new_tokens, a);
  }
  EXPECT_TRUE(differs) << "four other seeds all gave the same 12 tokens";
}

TEST(GeneratorGolden, StepCallbackSeesScoresAndCanStop) {
  GLIMPSE_REQUIRE_FIXTURES();
  auto m = model::load_model(test::fixtures_dir() + "/tiny-qwen2-vl/model");
  const model::ForwardInputs in = case_inputs("tiny-qwen2-vl", "image_a");
  GenerationConfig g;
  g.max_new_tokens = 8;
  GenerateOptions o;
  o.keep_hidden = true;
  std::int64_t calls = 0;
  o.on_step = [&](const StepInfo& s) {
    ++calls;
    EXPECT_EQ(s.step, calls - 1);
    // Greedy: the chosen token is the argmax, its log-prob the largest, its margin >= 0.
    EXPECT_EQ(s.tokens->item<std::int64_t>(), s.scores->argmax(-1).item<std::int64_t>());
    EXPECT_NEAR((*s.token_scores)[0].logprob, s.scores->log_softmax(-1).max().item<double>(), 1e-5);
    EXPECT_GE((*s.token_scores)[0].margin, 0);
    EXPECT_GT((*s.token_scores)[0].entropy, 0);
    EXPECT_EQ(s.hidden->size(-1), 64);
    // The hidden state is what the LM head read: its logits are the raw logits.
    EXPECT_TRUE(at::allclose(m->logits_from_hidden(*s.hidden, false), *s.logits, 1e-5, 1e-5));
    return calls < 3;
  };
  const auto r = generate(*m, in, g, o);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.new_tokens.size(1), 3);
  EXPECT_EQ(r.mean_logprob.size(), 1u);
  EXPECT_LT(r.mean_logprob[0], 0);
}

}  // namespace
}  // namespace glimpse::generate
