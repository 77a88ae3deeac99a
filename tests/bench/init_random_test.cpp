// glimpse init-random and glimpse bench: checkpoints from a config alone, and the benchmark's
// report. Nothing here depends on timing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "glimpse/bench/benchmark.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/model/model.h"
#include "glimpse/text/chat_template.h"
#include "glimpse/text/tokenizer.h"
#include "test_util.h"

namespace glimpse {
namespace {

namespace fs = std::filesystem;

std::string tiny_qwen_path() {
  return std::string(GLIMPSE_SOURCE_DIR) + "/examples/configs/tiny-qwen2-vl.json";
}

core::Config tiny_qwen() {
  return core::Config::load(tiny_qwen_path());
}

constexpr const char* kTinyLlava = R"({
  "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
  "image_token_index": 1000, "pad_token_id": 1001, "image_seq_length": 16,
  "text_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "head_dim": 16, "vocab_size": 1024, "rms_norm_eps": 1e-5},
  "vision_config": {"hidden_size": 32, "image_size": 56, "intermediate_size": 64,
                    "num_attention_heads": 4, "num_hidden_layers": 3, "patch_size": 14,
                    "model_type": "clip_vision_model"},
  "vision_feature_layer": -2, "vision_feature_select_strategy": "default"})";

constexpr const char* kTinyLlama = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "vocab_size": 512, "bos_token_id": 1, "eos_token_id": 2})";

constexpr const char* kTinyQwen2 = R"({
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "vocab_size": 2048, "bos_token_id": 1000, "eos_token_id": 1002})";

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

// input_ids with one image of `merged` tokens for the tiny Qwen2-VL (ids of its config).
model::ForwardInputs qwen_inputs() {
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  model::ForwardInputs in;
  std::vector<std::int64_t> ids{5, 6, 1009};
  for (int i = 0; i < 4; ++i) ids.push_back(1012);
  ids.insert(ids.end(), {1010, 7, 8});
  in.input_ids = at::tensor(ids, i64).view({1, -1});
  in.image_grid_thw = at::tensor(std::vector<std::int64_t>{1, 4, 4}, i64).view({1, 3});
  in.pixel_values = at::randn({16, 3 * 2 * 14 * 14}, at::TensorOptions().dtype(at::kFloat));
  return in;
}

TEST(InitRandomTest, TensorListMatchesTheLoader) {
  const auto specs = bench::checkpoint_tensors(tiny_qwen());
  // 3 layers x 12 + embed + norm (tied: no lm_head); 2 blocks x 12 + patch + merger 5.
  std::size_t lm = 0;
  for (const auto& s : specs) lm += s.language_model;
  EXPECT_EQ(lm, 3u * 12 + 2);
  EXPECT_EQ(specs.size(), lm + 2 * 12 + 1 + 6);
  EXPECT_EQ(specs.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(specs.front().shape, (std::vector<std::int64_t>{1024, 64}));
}

TEST(InitRandomTest, TinyQwenLoadsAndRunsThroughTheCli) {
  test::TempDir dir;
  const std::string model_dir = dir.file("model");
  const auto info = bench::write_random_checkpoint(tiny_qwen(), model_dir, {});
  EXPECT_EQ(info.files, std::vector<std::string>{"model.safetensors"});
  for (const char* f : {"config.json", "generation_config.json", "preprocessor_config.json",
                        "chat_template.json", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(model_dir) / f)) << f;
  }
  auto model = model::load_model(model_dir);
  const auto in = qwen_inputs();
  const auto out = model->forward(in, {});
  EXPECT_EQ(out.logits.sizes(), (at::IntArrayRef{1, 10, 1024}));
  EXPECT_TRUE(out.logits.isfinite().all().item<bool>());

  core::save_tensors(dir.file("inputs.safetensors"), {{"input_ids", in.input_ids},
                                                      {"pixel_values", in.pixel_values},
                                                      {"image_grid_thw", in.image_grid_thw}});
  auto r = test::run_cli({"forward", "--model", model_dir, "--inputs",
                          dir.file("inputs.safetensors"), "--out", dir.file("out.safetensors")});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = test::run_cli({"generate", "--model", model_dir, "--inputs", dir.file("inputs.safetensors"),
                     "--max-new-tokens", "3", "--dtype", "bf16"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = test::run_cli({"tokenize", "--tokenizer", model_dir, "--text", "hi"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  if (!test::fixtures_dir().empty()) {
    r = test::run_cli({"preprocess", "--model", model_dir, "--image",
                       test::fixtures_dir() + "/images/image_a_64x48.png", "--out",
                       dir.file("pixels.safetensors")});
    EXPECT_EQ(r.exit_code, 0) << r.out;
  }
}

TEST(InitRandomTest, SameSeedSameBytesOtherSeedOtherBytes) {
  test::TempDir dir;
  bench::RandomCheckpointOptions o;
  o.seed = 7;
  bench::write_random_checkpoint(tiny_qwen(), dir.file("a"), o);
  bench::write_random_checkpoint(tiny_qwen(), dir.file("b"), o);
  o.seed = 8;
  bench::write_random_checkpoint(tiny_qwen(), dir.file("c"), o);
  const auto a = read_bytes(fs::path(dir.file("a")) / "model.safetensors");
  EXPECT_GT(a.size(), 100000u);
  EXPECT_EQ(a, read_bytes(fs::path(dir.file("b")) / "model.safetensors"));
  EXPECT_NE(a, read_bytes(fs::path(dir.file("c")) / "model.safetensors"));
  for (const char* f : {"config.json", "tokenizer.json"}) {
    EXPECT_EQ(read_bytes(fs::path(dir.file("a")) / f), read_bytes(fs::path(dir.file("c")) / f));
  }
}

TEST(InitRandomTest, WeightsLookInitialised) {
  const auto specs = bench::checkpoint_tensors(tiny_qwen());
  for (const auto& s : specs) {
    const at::Tensor t = bench::random_tensor(s, 3, at::kFloat);
    if (s.name == "model.norm.weight") {
      EXPECT_NEAR(t.mean().item<double>(), 1.0, 0.02);
    } else if (s.name == "model.layers.0.mlp.up_proj.weight") {
      EXPECT_NEAR(t.std().item<double>(), 0.02, 0.002);
      EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.002);
    }
  }
  // The same tensor in bf16 is the fp32 one rounded.
  const auto& s = specs[1];
  EXPECT_TRUE(at::equal(bench::random_tensor(s, 3, at::kBFloat16),
                        bench::random_tensor(s, 3, at::kFloat).to(at::kBFloat16)));
}

TEST(InitRandomTest, TokenizerAndChatTemplateUseTheConfigIds) {
  test::TempDir dir;
  bench::write_random_checkpoint(tiny_qwen(), dir.path().string(), {});
  const auto tok = text::Tokenizer::load(dir.path().string());
  EXPECT_EQ(tok.token_to_id("<|image_pad|>"), 1012);
  EXPECT_EQ(tok.token_to_id("<|vision_start|>"), 1009);
  EXPECT_EQ(tok.token_to_id("<|vision_end|>"), 1010);
  EXPECT_EQ(tok.token_to_id("<|video_pad|>"), 1013);
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 1001);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 1002);
  EXPECT_EQ(tok.token_to_id("<|endoftext|>"), 1000);
  const auto chat = text::ChatTemplate::from_checkpoint(dir.path().string());
  EXPECT_EQ(chat.family(), text::ChatFamily::Qwen2VL);
  const std::string prompt =
      chat.apply({{"user", {text::ContentPart::image(), text::ContentPart::make_text("Hi?")}}});
  const auto ids = tok.encode_ids(prompt);
  const std::vector<std::int64_t> want{1009, 1012, 1010};
  EXPECT_NE(std::search(ids.begin(), ids.end(), want.begin(), want.end()), ids.end());
  EXPECT_EQ(tok.decode(ids), prompt);
}

TEST(InitRandomTest, LlavaLoadsAndTokenizes) {
  test::TempDir dir;
  const auto config = core::Config::parse(kTinyLlava, "config.json");
  bench::write_random_checkpoint(config, dir.path().string(), {});
  auto model = model::load_model(dir.path().string());
  const auto tok = text::Tokenizer::load(dir.path().string());
  EXPECT_EQ(tok.token_to_id("<image>"), 1000);
  EXPECT_EQ(tok.token_to_id("<s>"), 1);
  EXPECT_EQ(tok.token_to_id("</s>"), 2);
  const auto chat = text::ChatTemplate::from_checkpoint(dir.path().string());
  EXPECT_EQ(chat.family(), text::ChatFamily::Llava15);
  const auto ids = tok.encode_ids(
      chat.apply({{"user", {text::ContentPart::image(), text::ContentPart::make_text("Hi?")}}}),
      true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1000), 1);

  // 16 image tokens for a 56x56 image with 14-pixel patches.
  std::vector<std::int64_t> input{1, 5};
  input.insert(input.end(), 16, 1000);
  input.push_back(6);
  model::ForwardInputs in;
  in.input_ids = at::tensor(input, at::TensorOptions().dtype(at::kLong)).view({1, -1});
  in.pixel_values = at::randn({1, 3, 56, 56});
  const auto out = model->forward(in, {});
  EXPECT_TRUE(out.logits.isfinite().all().item<bool>());
}

TEST(InitRandomTest, TextOnlyModelsLoad) {
  for (const char* json : {kTinyLlama, kTinyQwen2}) {
    test::TempDir dir;
    bench::write_random_checkpoint(core::Config::parse(json, "config.json"), dir.path().string(),
                                   {});
    auto model = model::load_model(dir.path().string(), {c10::ScalarType::BFloat16});
    model::ForwardInputs in;
    in.input_ids = at::arange(3, 9, at::TensorOptions().dtype(at::kLong)).view({1, -1});
    EXPECT_TRUE(model->forward(in, {}).logits.isfinite().all().item<bool>()) << json;
    EXPECT_NO_THROW(text::Tokenizer::load(dir.path().string()));
    EXPECT_NO_THROW(text::ChatTemplate::from_checkpoint(dir.path().string()));
  }
}

TEST(InitRandomTest, ShardsWithAnIndexLoadTheSameWeights) {
  test::TempDir dir;
  bench::RandomCheckpointOptions o;
  o.max_shard_bytes = 200000;
  const auto info = bench::write_random_checkpoint(tiny_qwen(), dir.file("sharded"), o);
  EXPECT_GT(info.files.size(), 1u);
  EXPECT_TRUE(fs::exists(fs::path(dir.file("sharded")) / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(fs::path(dir.file("sharded")) / "model.safetensors"));
  bench::write_random_checkpoint(tiny_qwen(), dir.file("single"), {});
  const auto in = qwen_inputs();
  const auto a = model::load_model(dir.file("sharded"))->forward(in, {}).logits;
  const auto b = model::load_model(dir.file("single"))->forward(in, {}).logits;
  EXPECT_TRUE(at::equal(a, b));
}

TEST(InitRandomTest, BadConfigsAreOneLineErrorsNamingTheKey) {
  test::TempDir dir;
  struct Case {
    std::string json, key;
  };
  const std::vector<Case> cases{
      {R"({"model_type": "gpt2"})", "model_type"},
      {R"({"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
           "vocab_size": 100, "intermediate_size": 8, "num_hidden_layers": 1,
           "num_attention_heads": 2, "rope_scaling": {"mrope_section": [1, 1, 2]}})",
       "hidden_size"},
      {R"({"model_type": "llama", "hidden_size": -4})", "hidden_size"},
      {R"({"model_type": "llava", "text_config": {"model_type": "mistral"}})", "model_type"},
      {"{not json", "config.json"},
  };
  for (const auto& c : cases) {
    write_file(dir.file("config.json"), c.json);
    const auto r = test::run_cli(
        {"init-random", "--config", dir.file("config.json"), "--out", dir.file("out")});
    EXPECT_GT(r.exit_code, 0) << c.json;
    EXPECT_LT(r.exit_code, 128) << c.json;
    EXPECT_NE(r.out.find(c.key), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_THROW(bench::checkpoint_tensors(
                     core::Config::parse(c.json == "{not json" ? "{}" : c.json, "config.json")),
                 Error);
  }
}

TEST(BenchTest, SmokeJsonOnTheTinyConfig) {
  const auto r = test::run_cli({"bench", "--config", tiny_qwen_path(), "--visual-tokens", "6",
                                "--text-tokens", "8", "--new-tokens", "2", "--repeat", "1",
                                "--warmup", "0", "--dtype", "f32", "--threads", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string last = test::last_line(r.out);
  const auto j = nlohmann::json::parse(last);
  for (const char* key :
       {"prefill_ms", "prefill_tokens_per_s", "end_to_end_prefill_ms", "decode_ms_per_token",
        "vision_ms", "peak_rss_bytes", "kv_bytes", "gemm_peak_gflops", "mem_bandwidth_gbs",
        "prefill_flops_utilization", "decode_bandwidth_utilization"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    const double v = j[key].get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << key << " = " << v;
  }
  EXPECT_EQ(j["visual_tokens"], 6);
  EXPECT_EQ(j["prefill_tokens"], 14);
  EXPECT_EQ(j["image_grid_thw"], nlohmann::json({1, 4, 6}));
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["dtype"], "f32");
  EXPECT_EQ(j["weights"], "resident");
  EXPECT_TRUE(j["system"].contains("blas"));
  EXPECT_TRUE(j["system"].contains("cpu_features"));
}

TEST(BenchTest, LibraryRunWithProfileOnAModelFolder) {
  test::TempDir dir;
  bench::write_random_checkpoint(tiny_qwen(), dir.path().string(), {});
  auto model = model::load_model(dir.path().string(), {c10::ScalarType::BFloat16});
  bench::BenchOptions o;
  o.image_width = 100;
  o.image_height = 60;
  o.text_tokens = 4;
  o.new_tokens = 1;
  o.repeat = 1;
  o.warmup = 0;
  o.machine_limits = false;
  o.profile = true;
  const auto r = bench::run_benchmark(*model, o);
  // smart_resize(60, 100, 28) -> 56 x 112: a 4 x 8 patch grid, 8 merged tokens.
  EXPECT_EQ(r.image_grid_thw, (std::vector<std::int64_t>{1, 4, 8}));
  EXPECT_EQ(r.visual_tokens, 8);
  EXPECT_EQ(r.prefill_tokens, 12);
  EXPECT_GT(r.kv_bytes, 0);
  EXPECT_FALSE(r.profile.empty());
  EXPECT_EQ(r.dtype, "bf16");
}

TEST(BenchTest, BadOptionsAreOneLineErrors) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"bench", "--config", tiny_qwen_path(), "--pipeline"},
           {"bench", "--config", tiny_qwen_path(), "--pipeline",
            R"({"methods": [{"type": "nope"}]})"},
           {"bench", "--config", tiny_qwen_path(), "--image-size", "12by4"},
           {"bench", "--config", tiny_qwen_path(), "--text-tokens", "1", "--repeat", "1"},
           {"bench"},
       }) {
    const auto r = test::run_cli(args);
    EXPECT_GT(r.exit_code, 0) << r.out;
    EXPECT_LT(r.exit_code, 128) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  const auto r = test::run_cli(
      {"bench", "--config", tiny_qwen_path(), "--pipeline", R"({"methods": [{"type": "nope"}]})"});
  EXPECT_NE(r.out.find("nope"), std::string::npos) << r.out;
}

TEST(BenchTest, PipelineIsTimedAgainstThePlainRunInTheSameProcess) {
  const auto r = test::run_cli({"bench",
                                "--config",
                                tiny_qwen_path(),
                                "--visual-tokens",
                                "6",
                                "--text-tokens",
                                "8",
                                "--new-tokens",
                                "2",
                                "--repeat",
                                "1",
                                "--warmup",
                                "0",
                                "--dtype",
                                "f32",
                                "--threads",
                                "1",
                                "--no-machine-limits",
                                "--pipeline",
                                R"({"methods": [{"type": "fastv", "layer": 1, "ratio": 0.5}]})",
                                "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string last = test::last_line(r.out);
  const auto j = nlohmann::json::parse(last);
  EXPECT_EQ(j["prefill_input"], "image_embeds");
  ASSERT_TRUE(j.contains("pipeline")) << last;
  const auto& p = j["pipeline"];
  for (const char* key : {"end_to_end_prefill_ms", "prefill_ms", "decode_ms_per_token",
                          "end_to_end_prefill_speedup", "prefill_speedup"}) {
    EXPECT_GT(p[key].get<double>(), 0) << key;
  }
  // FastV's report: 6 visual tokens, half of them kept from layer 1 on.
  const auto& fastv = p["report"]["methods"][0];
  EXPECT_EQ(fastv["type"], "fastv");
  EXPECT_EQ(fastv["visual_tokens_before"].get<double>(), 6);
  EXPECT_EQ(fastv["visual_tokens_after"].get<double>(), 3);
}

}  // namespace
}  // namespace glimpse
