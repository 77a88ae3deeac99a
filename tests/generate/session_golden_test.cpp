// Sessions on the tiny fixture models: a conversation prefilled in parts (text, images, a video
// appended after the cache) equals the reference's forward over the whole conversation; forks
// decoded in one batch equal independent runs; fork memory grows by the tails only.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "tensor_testing.h"
#include "test_util.h"

namespace glimpse::generate {
namespace {

using test::all_close;

std::string case_file(const std::string& model, const std::string& name, const std::string& kind) {
  return test::fixtures_dir() + "/" + model + "/cases/" + name + "." + kind + ".safetensors";
}

model::Model& tiny(const std::string& name) {
  static std::map<std::string, std::unique_ptr<model::Model>> models;
  auto& m = models[name];
  if (!m) m = model::load_model(test::fixtures_dir() + "/" + name + "/model");
  return *m;
}

at::Tensor reference_logits(const std::string& model, const std::string& name) {
  return core::load_tensor(core::SafetensorsFile::open(case_file(model, name, "forward")),
                           "logits");
}

// The inputs of a batch-1 case cut before token `cut`: the first part with the media whose
// placeholders it holds, the rest with the others. Qwen media rows are split by grid; LLaVA's
// pixel_values by image.
std::pair<model::ForwardInputs, model::ForwardInputs> cut_inputs(const model::ForwardInputs& in,
                                                                 std::int64_t cut,
                                                                 std::int64_t images_before,
                                                                 std::int64_t videos_before) {
  const std::int64_t s = in.input_ids.size(1);
  model::ForwardInputs a, b;
  a.input_ids = in.input_ids.narrow(1, 0, cut);
  b.input_ids = in.input_ids.narrow(1, cut, s - cut);
  auto split_rows = [](const at::Tensor& pixels, const at::Tensor& grid, std::int64_t before,
                       at::Tensor& pa, at::Tensor& ga, at::Tensor& pb, at::Tensor& gb) {
    if (!pixels.defined()) return;
    before = std::min(before, grid.defined() ? grid.size(0) : pixels.size(0));
    if (!grid.defined()) {  // LLaVA: one pixel_values row per image
      if (before > 0) pa = pixels.narrow(0, 0, before);
      if (before < pixels.size(0)) pb = pixels.narrow(0, before, pixels.size(0) - before);
      return;
    }
    const std::int64_t rows =
        before == 0 ? 0 : grid.narrow(0, 0, before).prod(1).sum().item<std::int64_t>();
    if (before > 0) {
      pa = pixels.narrow(0, 0, rows);
      ga = grid.narrow(0, 0, before);
    }
    if (before < grid.size(0)) {
      pb = pixels.narrow(0, rows, pixels.size(0) - rows);
      gb = grid.narrow(0, before, grid.size(0) - before);
    }
  };
  split_rows(in.pixel_values, in.image_grid_thw, images_before, a.pixel_values, a.image_grid_thw,
             b.pixel_values, b.image_grid_thw);
  split_rows(in.pixel_values_videos, in.video_grid_thw, videos_before, a.pixel_values_videos,
             a.video_grid_thw, b.pixel_values_videos, b.video_grid_thw);
  if (in.second_per_grid_ts.defined() && b.video_grid_thw.defined())
    b.second_per_grid_ts = in.second_per_grid_ts.narrow(0, videos_before, b.video_grid_thw.size(0));
  return {a, b};
}

struct AppendCase {
  std::string model, name;
  std::int64_t media_token;  // the first placeholder of the appended medium: cut before its block
  std::int64_t occurrence;   // which block of that token starts the appended part (0-based)
  std::int64_t images_before, videos_before;
};

// Index of the first token of the `occurrence`-th run of `token` in row 0, stepped back over a
// vision-start token (Qwen puts one before every block).
std::int64_t block_start(const at::Tensor& ids, std::int64_t token, std::int64_t occurrence) {
  const at::Tensor row = ids[0].contiguous();
  const auto* p = row.data_ptr<std::int64_t>();
  std::int64_t seen = -1;
  for (std::int64_t i = 0; i < row.numel(); ++i) {
    if (p[i] == token && (i == 0 || p[i - 1] != token) && ++seen == occurrence) return i - 1;
  }
  return -1;
}

class SessionAppendGolden : public ::testing::TestWithParam<AppendCase> {};

TEST_P(SessionAppendGolden, AppendAfterTheCacheEqualsTheWholeConversation) {
  GLIMPSE_REQUIRE_FIXTURES();
  const AppendCase& c = GetParam();
  const model::ForwardInputs in = model::read_forward_inputs(case_file(c.model, c.name, "inputs"));
  const at::Tensor ref = reference_logits(c.model, c.name);
  const std::int64_t s = in.input_ids.size(1);
  const std::int64_t cut =
      c.media_token < 0 ? s / 2 : block_start(in.input_ids, c.media_token, c.occurrence);
  ASSERT_GT(cut, 0);
  ASSERT_LT(cut, s - 1);
  auto [first, rest] = cut_inputs(in, cut, c.images_before, c.videos_before);
  Session session(tiny(c.model));
  const at::Tensor a = session.prefill(first);
  EXPECT_TRUE(all_close(a, ref.select(1, cut - 1), 1e-4, 1e-4, "logits before the cut"));
  // The appended chunk in two parts: the medium with some text, then the rest as a text append.
  const std::int64_t tail = 3;
  auto [media_part, text_part] = cut_inputs(rest, rest.input_ids.size(1) - tail, 1 << 20, 1 << 20);
  const at::Tensor b = session.append(media_part);
  EXPECT_TRUE(all_close(b, ref.select(1, s - tail - 1), 1e-4, 1e-4, "logits after the media"));
  const at::Tensor t = text_part.input_ids.contiguous();
  const at::Tensor last = session.append(
      std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + tail));
  EXPECT_TRUE(all_close(last, ref.select(1, s - 1), 1e-4, 1e-4, "logits at the end"));
  EXPECT_EQ(session.ids().size(1), s);
  EXPECT_TRUE(at::equal(session.ids(), in.input_ids.to(at::kLong)));
  EXPECT_EQ(session.stats().prefills, 1);
  EXPECT_EQ(session.stats().appends, 2);
  // The layout continues the media numbering and the original indices.
  const model::TokenLayout& l = session.layout();
  ASSERT_EQ(l.length(), s);
  EXPECT_TRUE(at::equal(l.original_index[0], at::arange(s, at::kLong)));
  EXPECT_EQ(session.images() + session.videos(), c.images_before + c.videos_before + 1);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SessionAppendGolden,
    ::testing::Values(AppendCase{"tiny-qwen2-vl", "two_images", 1012, 1, 1, 0},
                      AppendCase{"tiny-qwen2.5-vl", "two_images", 1012, 1, 1, 0},
                      AppendCase{"tiny-qwen2-vl", "video", 1013, 0, 0, 0},
                      AppendCase{"tiny-qwen2.5-vl", "video", 1013, 0, 0, 0},
                      AppendCase{"tiny-llava-1.5", "two_images", 1000, 1, 1, 0}),
    [](const ::testing::TestParamInfo<AppendCase>& info) {
      std::string n = info.param.model + "_" + info.param.name;
      for (auto& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

TEST(SessionGolden, TextAppendAndStepsEqualTheWholeText) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    const auto in = model::read_forward_inputs(case_file(name, "text_only", "inputs"));
    const at::Tensor ref = reference_logits(name, "text_only");
    const std::int64_t s = in.input_ids.size(1);
    Session session(tiny(name));
    model::ForwardInputs head;
    head.input_ids = in.input_ids.narrow(1, 0, s - 4);
    session.prefill(head);
    model::ForwardInputs two;
    two.input_ids = in.input_ids.narrow(1, s - 4, 2);
    EXPECT_TRUE(all_close(session.append(two), ref.select(1, s - 3), 1e-4, 1e-4, name + " append"));
    for (std::int64_t i = s - 2; i < s; ++i) {
      const at::Tensor logits = session.step(in.input_ids.select(1, i).to(at::kLong));
      EXPECT_TRUE(all_close(logits, ref.select(1, i), 1e-4, 1e-4, name + " step"));
    }
    EXPECT_EQ(session.lengths()[0].item<std::int64_t>(), s);
  }
}

// Question ids of different lengths for each fork.
const std::vector<std::vector<std::int64_t>> kQuestions = {
    {72, 101, 108}, {33}, {87, 104, 97, 116, 63}};

GenerationResult independent_run(model::Model& m, const model::ForwardInputs& in,
                                 const std::vector<std::int64_t>& question, GenerationConfig g,
                                 std::uint64_t seed, bool keep_logits) {
  Session s(m);
  s.prefill(in);
  s.append(question);
  GenerateOptions o;
  o.keep_step_logits = keep_logits;
  o.seeds = {seed};
  return Generator(s, g, o).run();
}

TEST(SessionGolden, BatchedForksEqualIndependentRuns) {
  GLIMPSE_REQUIRE_FIXTURES();
  for (const std::string name : {"tiny-qwen2-vl", "tiny-llava-1.5"}) {
    model::Model& m = tiny(name);
    const auto in = model::read_forward_inputs(case_file(name, "image_a", "inputs"));
    for (const bool sample : {false, true}) {
      GenerationConfig g;
      g.max_new_tokens = 6;
      g.do_sample = sample;
      g.top_k = 20;
      g.temperature = 0.9;
      g.seed = 11;
      Session root(m);
      root.prefill(in);
      auto forks = root.fork(3);
      for (std::size_t i = 0; i < forks.size(); ++i) forks[i].append(kQuestions[i]);
      Session batch = Session::stack(std::move(forks));
      ASSERT_EQ(batch.batch(), 3);
      // Each sequence attends to its own tokens only: padding of the shorter forks is masked.
      for (std::int64_t l = 0; l < m.num_layers(); ++l) {
        const at::Tensor kv = batch.state().kv_lengths(l);
        ASSERT_EQ(kv.sizes(), (std::vector<std::int64_t>{3, 2}));
        EXPECT_TRUE(at::equal(kv, batch.lengths().view({3, 1}).expand({3, 2})));
        EXPECT_EQ(batch.state().cache->length(l),
                  in.input_ids.size(1) + static_cast<std::int64_t>(kQuestions[2].size()));
      }
      GenerateOptions o;
      o.keep_step_logits = true;
      const GenerationResult r = Generator(batch, g, o).run();
      for (std::int64_t i = 0; i < 3; ++i) {
        const GenerationResult alone =
            independent_run(m, in, kQuestions[i], g, g.seed + static_cast<std::uint64_t>(i), true);
        EXPECT_TRUE(at::equal(r.new_tokens[i], alone.new_tokens[0]))
            << name << (sample ? " sampled" : " greedy") << " fork " << i;
        for (std::size_t k = 0; k < alone.step_logits.size(); ++k) {
          EXPECT_TRUE(all_close(r.step_logits[k][i], alone.step_logits[k][0], 1e-4, 1e-4,
                                name + " step logits"));
        }
      }
    }
  }
}

TEST(SessionGolden, ForkMemoryGrowsByTailsOnly) {
  GLIMPSE_REQUIRE_FIXTURES();
  model::Model& m = tiny("tiny-qwen2-vl");
  const auto in = model::read_forward_inputs(case_file("tiny-qwen2-vl", "image_a", "inputs"));
  Session root(m);
  root.prefill(in);
  const std::int64_t prefix = root.stats().bytes_own;
  ASSERT_GT(prefix, 0);
  auto forks = root.fork(4);
  // The prefix is frozen in place: the root now reads it as shared and holds nothing alone.
  EXPECT_EQ(root.stats().bytes_shared, prefix);
  EXPECT_EQ(root.stats().bytes_own, 0);
  std::vector<const Session*> all{&root};
  for (std::size_t i = 0; i < forks.size(); ++i) {
    EXPECT_EQ(forks[i].stats().bytes_shared, prefix);
    forks[i].append(kQuestions[i % kQuestions.size()]);
    all.push_back(&forks[i]);
  }
  std::int64_t tails = 0;
  for (std::size_t i = 0; i < forks.size(); ++i) {
    const std::int64_t tail = forks[i].stats().bytes_own;
    EXPECT_GT(tail, 0);
    // Each fork adds its tail and nothing else.
    std::vector<const Session*> before(all.begin(), all.begin() + 1 + i);
    std::vector<const Session*> after(all.begin(), all.begin() + 2 + i);
    EXPECT_EQ(kv_bytes_held(after) - kv_bytes_held(before), tail);
    tails += tail;
  }
  // Held together: the prefix once, plus each fork's tail.
  EXPECT_EQ(kv_bytes_held(all), prefix + tails);
  EXPECT_EQ(root.stats().forks, 4);
}

// Sessions that share nothing (two prompts of different lengths) stack too: their caches are
// copied and padded; each sequence decodes as it would alone, and both prefills are counted.
TEST(SessionGolden, IndependentSessionsStackAndDecodeAsAlone) {
  GLIMPSE_REQUIRE_FIXTURES();
  model::Model& m = tiny("tiny-qwen2-vl");
  const auto image = model::read_forward_inputs(case_file("tiny-qwen2-vl", "image_a", "inputs"));
  const auto text = model::read_forward_inputs(case_file("tiny-qwen2-vl", "text_only", "inputs"));
  ASSERT_NE(image.input_ids.size(1), text.input_ids.size(1));
  GenerationConfig g;
  g.max_new_tokens = 5;
  std::vector<at::Tensor> alone;
  for (const auto* in : {&image, &text}) alone.push_back(generate(m, *in, g).new_tokens[0]);
  Session a(m), b(m);
  a.prefill(image);
  b.prefill(text);
  std::vector<Session> two;
  two.push_back(std::move(a));
  two.push_back(std::move(b));
  Session batch = Session::stack(std::move(two));
  EXPECT_EQ(batch.stats().prefills, 2);
  const GenerationResult r = Generator(batch, g).run();
  EXPECT_TRUE(at::equal(r.new_tokens[0], alone[0]));
  EXPECT_TRUE(at::equal(r.new_tokens[1], alone[1]));
}

TEST(SessionGolden, BadUseIsAnErrorNamingIt) {
  GLIMPSE_REQUIRE_FIXTURES();
  model::Model& qwen = tiny("tiny-qwen2-vl");
  model::Model& llava = tiny("tiny-llava-1.5");
  const auto in = model::read_forward_inputs(case_file("tiny-qwen2-vl", "image_a", "inputs"));
  auto expect_error = [](const std::function<void()>& f, const std::string& part) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one naming '" << part << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  {
    Session s(qwen);
    expect_error([&] { s.append({1, 2}); }, "before prefill");
    expect_error([&] { s.step(at::tensor({1}, at::kLong)); }, "before prefill");
    s.prefill(in);
    expect_error([&] { s.prefill(in); }, "holds a prompt");
    expect_error([&] { s.step(at::tensor({1, 2}, at::kLong)); }, "one token per sequence");
    expect_error([&] { s.append({5000}); }, "outside the vocabulary");
    expect_error([&] { s.fork(0); }, "fork of 0");
    std::vector<Session> forks = s.fork(2);
    std::vector<Session> pair;
    for (auto& f : forks) pair.push_back(std::move(f));
    Session batch = Session::stack(std::move(pair));
    expect_error([&] { forks[0].append({1}); }, "closed session");
    expect_error([&] { batch.fork(2); }, "fork one sequence at a time");
    s.close();
    expect_error([&] { s.fork(1); }, "closed session");
  }
  {
    // LLaVA's text model allows 512 positions.
    const auto li = model::read_forward_inputs(case_file("tiny-llava-1.5", "image_a", "inputs"));
    Session s(llava);
    s.prefill(li);
    expect_error([&] { s.append(std::vector<std::int64_t>(600, 5)); },
                 "max_position_embeddings 512");
    model::ForwardInputs video;
    video.input_ids = at::full({1, 2}, 5, at::kLong);
    video.pixel_values_videos = at::zeros({4, 3, 56, 56});
    expect_error([&] { s.append(video); }, "videos");
  }
  {
    // Stacking sessions that do not share a prefix.
    Session a(qwen), b(qwen);
    a.prefill(in);
    b.prefill(in);
    std::vector<Session> two;
    two.push_back(std::move(a.fork(1)[0]));
    two.push_back(std::move(b.fork(1)[0]));
    expect_error([&] { Session::stack(std::move(two)); }, "do not share one prefix");
  }
}

}  // namespace
}  // namespace glimpse::generate
