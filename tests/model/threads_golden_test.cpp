// Two models used from two threads at once (a host program's worker threads): each thread gets
// what it gets alone, in forward passes, generation and the autograd path (whose switch
// is per thread).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <thread>

#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::model {
namespace {

struct Work {
  std::unique_ptr<Model> model;
  ForwardInputs inputs;
  bool autograd = false;
  at::Tensor logits, tokens;

  void run(int rounds) {
    for (int r = 0; r < rounds; ++r) {
      ForwardOptions o;
      o.autograd = autograd;
      logits = model->forward(inputs, o).logits.detach();
      generate::GenerationConfig g;
      g.max_new_tokens = 4;
      tokens = generate::generate(*model, inputs, g, {}).new_tokens;
    }
  }
};

Work make(const std::string& name, bool autograd) {
  Work w;
  w.model = load_model(test::fixtures_dir() + "/" + name + "/model");
  w.inputs =
      read_forward_inputs(test::fixtures_dir() + "/" + name + "/cases/image_a.inputs.safetensors");
  w.inputs.input_ids = w.inputs.input_ids.to(at::kLong);
  w.autograd = autograd;
  return w;
}

TEST(ThreadsGolden, TwoModelsInTwoThreadsGetWhatTheyGetAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  Work a = make("tiny-qwen2-vl", /*autograd=*/true), b = make("tiny-llava-1.5", false);
  a.run(1);
  b.run(1);
  const at::Tensor a_logits = a.logits, a_tokens = a.tokens;
  const at::Tensor b_logits = b.logits, b_tokens = b.tokens;
  std::thread ta([&] { a.run(3); });
  std::thread tb([&] { b.run(3); });
  ta.join();
  tb.join();
  // Thread teams may split GEMMs differently when two run at once: equal up to fp32 rounding.
  EXPECT_TRUE(at::allclose(a.logits, a_logits, 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(a.tokens, a_tokens));
  EXPECT_TRUE(at::allclose(b.logits, b_logits, 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(b.tokens, b_tokens));
}

}  // namespace
}  // namespace glimpse::model
