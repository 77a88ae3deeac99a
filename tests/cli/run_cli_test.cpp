// glimpse run: prompt and images through the processor and the generator, end to end against the
// reference's greedy ids; the pipeline report; the random-weights note; bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace glimpse::test {
namespace {

nlohmann::json last_json_line(const std::string& out) {
  return nlohmann::json::parse(last_line(out));
}

nlohmann::json manifest_case(const std::string& model, const std::string& name) {
  std::ifstream in(fixtures_dir() + "/" + model + "/manifest.json");
  return nlohmann::json::parse(in).at("cases").at(name);
}

class RunCliGolden
    : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::string>> {};

// The user text of each case is the manifest's prompt between the placeholders and the end of the
// user turn; the chat template and the processor must rebuild the rest.
TEST_P(RunCliGolden, GreedyIdsEqualTheReference) {
  GLIMPSE_REQUIRE_FIXTURES();
  const auto& [model, case_name, user_text] = GetParam();
  const auto c = manifest_case(model, case_name);
  std::vector<std::string> args = {"run",      "--model", fixtures_dir() + "/" + model + "/model",
                                   "--prompt", user_text, "--max-new-tokens",
                                   "8",        "--json"};
  for (const auto& image : c.at("images")) {
    args.push_back("--image");
    args.push_back(fixtures_dir() + "/" + image.get<std::string>());
  }
  const auto frames = c.value("video_frames", nlohmann::json::array());
  if (!frames.empty()) {
    args.insert(args.end(), {"--fps", "2", "--frames"});  // the fixture's processor call: fps=2.0
    for (const auto& frame : frames)
      args.push_back(fixtures_dir() + "/" + frame.get<std::string>());
  }
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = last_json_line(r.out);
  EXPECT_EQ(j.at("ids"), c.at("generated_ids").at(0)) << r.out;
  EXPECT_FALSE(j.at("random_weights").get<bool>());
  EXPECT_GT(j.at("timings").at("prefill_ms").get<double>(), 0);
  EXPECT_TRUE(j.at("report").at("methods").empty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RunCliGolden,
    ::testing::Values(std::make_tuple("tiny-qwen2-vl", "image_a", "Describe this image."),
                      std::make_tuple("tiny-qwen2.5-vl", "two_images", "Compare the two pictures."),
                      std::make_tuple("tiny-llava-1.5", "image_a", "What is shown in this image?"),
                      std::make_tuple("tiny-qwen2-vl", "text_only", "Hello! Please count to five."),
                      std::make_tuple("tiny-qwen2.5-vl", "video", "What happens in this video?")));

TEST(RunCliGoldenExtra, StreamsTheAnswerAndReportsFastV) {
  GLIMPSE_REQUIRE_FIXTURES();
  TempDir dir;
  const std::string model = fixtures_dir() + "/tiny-qwen2-vl/model";
  const std::string image = fixtures_dir() + "/images/image_b_97x131.png";
  const auto streamed = run_cli(
      {"run", "--model", model, "--image", image, "--prompt", "Hi", "--max-new-tokens", "4"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.out;
  const auto json = run_cli({"run", "--model", model, "--image", image, "--prompt", "Hi",
                             "--max-new-tokens", "4", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.out;
  // The streamed text is the JSON answer (plus the final newline).
  EXPECT_EQ(streamed.out, last_json_line(json.out).at("answer").get<std::string>() + "\n");

  const auto fastv =
      run_cli({"run", "--model", model, "--image", image, "--prompt", "Hi", "--max-new-tokens", "4",
               "--json", "--pipeline", R"({"methods": [{"type": "fastv", "layer": 1,
               "ratio": 0.5}]})",
               "--report", dir.file("report.json")});
  ASSERT_EQ(fastv.exit_code, 0) << fastv.out;
  const auto entry = last_json_line(fastv.out).at("report").at("methods").at(0);
  EXPECT_EQ(entry.at("type"), "fastv");
  EXPECT_EQ(entry.at("visual_tokens_before"), 8);  // image_b: grid 1x8x4 -> 8 tokens
  EXPECT_EQ(entry.at("visual_tokens_after"), 4);
  std::ifstream report(dir.file("report.json"));
  EXPECT_EQ(nlohmann::json::parse(report).at("methods").at(0), entry);
}

TEST(RunCliGoldenExtra, ControllerRunsWithTheMethodsInside) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = fixtures_dir() + "/tiny-qwen2-vl/model";
  const std::string image = fixtures_dir() + "/images/image_b_97x131.png";
  const auto r = run_cli({"run", "--model", model, "--image", image, "--prompt", "Hi",
                          "--max-new-tokens", "4", "--json", "--pipeline",
                          R"({"methods": [{"type": "deco"}],
                              "controller": {"type": "self_consistency", "candidates": 3}})"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = last_json_line(r.out);
  const auto& report = j.at("report");
  EXPECT_EQ(report.at("methods").at(0).at("type"), "deco");
  // DeCo calibrated the prefill and the candidates' decode forwards.
  EXPECT_GT(report.at("methods").at(0).at("calibrated").get<double>(), 1);
  const auto& controller = report.at("controller");
  EXPECT_EQ(controller.at("type"), "self_consistency");
  const auto& round = controller.at("rounds").at(0);
  EXPECT_EQ(round.at("candidates"), 3);
  EXPECT_EQ(round.at("prefills"), 1);
  EXPECT_EQ(report.at("session").at("prefills"), 1);
  EXPECT_FALSE(j.at("ids").empty());
}

TEST(RunCliGoldenExtra, CyberVRunsOnAVideo) {
  GLIMPSE_REQUIRE_FIXTURES();
  std::vector<std::string> args = {
      "run",
      "--model",
      fixtures_dir() + "/tiny-qwen2.5-vl/model",
      "--prompt",
      "What happens? A. x B. y",
      "--max-new-tokens",
      "3",
      "--json",
      "--pipeline",
      R"({"controller": {"type": "cyberv", "candidates": 2, "max_thinking_tokens": 2}})",
      "--fps",
      "2",
      "--frames"};
  for (int i = 0; i < 4; ++i)
    args.push_back(fixtures_dir() + "/images/video_frame" + std::to_string(i) + "_70x56.png");
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = last_json_line(r.out);
  const auto& controller = j.at("report").at("controller");
  EXPECT_EQ(controller.at("type"), "cyberv");
  const auto& round = controller.at("rounds").at(0);
  EXPECT_EQ(round.at("candidates"), 2);
  EXPECT_EQ(round.at("prefills"), 1);
  EXPECT_EQ(round.at("official_prefills"), 3);
  // 4 frames make 2 temporal groups, not 32: no attention signal, hence no second round.
  EXPECT_FALSE(round.at("attention_signal").get<bool>());
  EXPECT_EQ(controller.at("rounds").size(), 1u);
}

TEST(RunCliGoldenExtra, BadInputIsOneLineErrorNamingIt) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = fixtures_dir() + "/tiny-qwen2-vl/model";
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"--image", "/nonexistent/cat.png"}, "/nonexistent/cat.png"},
      {{"--video", "/nonexistent/clip.mp4"}, "/nonexistent/clip.mp4"},
      {{"--pipeline", R"({"methods": [{"type": "fastv", "ratio": 1.5}]})"}, "ratio"},
      {{"--pipeline", R"({"methods": [{"type": "nope"}]})"}, "nope"},
      {{"--pipeline", R"({"methods": [{"type": "fastv", "layer": 3}]})"}, "'layer'"},
      {{"--pipeline", R"({"methods": [{"type": "fastv", "layer": "2"}]})"}, "'layer'"},
      {{"--pipeline", R"({"methods": [{"type": "fastv", "strength": 2}]})"}, "'strength'"},
      {{"--pipeline", R"({"controller": {"type": "self_consistency", "candidates": 0}})"},
       "'candidates'"},
      {{"--pipeline", R"({"controller": {"type": "cyberv"}})"}, "video"},
      {{"--pipeline", R"({"controller": {"type": "self_consistency"}})", "--num-return-sequences",
        "2", "--do-sample"},
       "--num-return-sequences"},
      {{"--prompt-format", "raw", "--image", fixtures_dir() + "/images/image_a_64x48.png"},
       "image"},
      {{"--prompt-format", "raw", "--system", "Be brief."}, "--system"},
      {{"--dtype", "f16"}, "--dtype"},
      {{"--weights", "swapped"}, "--weights"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", "--model", model, "--prompt", "Hi"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << c.needle;
    EXPECT_EQ(r.signal, 0) << c.needle;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  const auto no_model = run_cli({"run", "--model", "/nonexistent/model", "--prompt", "Hi"});
  EXPECT_NE(no_model.exit_code, 0);
  EXPECT_NE(no_model.out.find("/nonexistent/model"), std::string::npos) << no_model.out;
}

TEST(RunCliTest, RandomCheckpointsSaySo) {
  TempDir dir;
  const std::string config =
      std::string(GLIMPSE_SOURCE_DIR) + "/examples/configs/tiny-qwen2-vl.json";
  const auto init = run_cli({"init-random", "--config", config, "--out", dir.file("m")});
  ASSERT_EQ(init.exit_code, 0) << init.out;
  const auto r =
      run_cli({"run", "--model", dir.file("m"), "--image",
               std::string(GLIMPSE_SOURCE_DIR) + "/examples/images/house.png", "--prompt",
               "What is in the picture?", "--max-new-tokens", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("random weights"), std::string::npos) << r.out;
  EXPECT_TRUE(last_json_line(r.out).at("random_weights").get<bool>());
  EXPECT_EQ(last_json_line(r.out).at("ids").size(), 3u);
}

// --num-return-sequences: one prefill, forks decoded in one batch; candidate i is what a single
// run with seed + i gives, and the report says what was shared.
TEST(RunCliGoldenExtra, CandidatesShareOnePrefillAndAreReproducible) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = fixtures_dir() + "/tiny-qwen2-vl/model";
  const std::string image = fixtures_dir() + "/images/image_a_64x48.png";
  const std::vector<std::string> base = {
      "run",    "--model",     model,           "--image",
      image,    "--prompt",    "Describe it.",  "--max-new-tokens",
      "6",      "--do-sample", "--temperature", "1.5",
      "--seed", "5",           "--json"};
  auto args = base;
  args.insert(args.end(), {"--num-return-sequences", "3"});
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = last_json_line(r.out);
  ASSERT_EQ(j.at("candidates").size(), 3u) << r.out;
  const auto session = j.at("report").at("session");
  EXPECT_EQ(session.at("prefills"), 1);
  EXPECT_EQ(session.at("sequences"), 3);
  EXPECT_GT(session.at("bytes_shared").get<std::int64_t>(), 0);
  EXPECT_GT(session.at("bytes_per_fork").get<std::int64_t>(), 0);
  for (int i = 0; i < 3; ++i) {
    const auto& c = j.at("candidates")[i];
    EXPECT_LT(c.at("mean_logprob").get<double>(), 0);
    auto one = base;
    one[13] = std::to_string(5 + i);  // the value of --seed
    const auto single = run_cli(one);
    ASSERT_EQ(single.exit_code, 0) << single.out;
    EXPECT_EQ(c.at("ids"), last_json_line(single.out).at("ids")) << "candidate " << i;
    EXPECT_EQ(c.at("answer"), last_json_line(single.out).at("answer"));
  }
}

TEST(RunCliGoldenExtra, GenerationSettingsItCannotHonourAreErrors) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = fixtures_dir() + "/tiny-qwen2-vl/model";
  const std::vector<std::string> base = {"run", "--model",          model, "--prompt",
                                         "Hi",  "--max-new-tokens", "2"};
  auto greedy_n = base;
  greedy_n.insert(greedy_n.end(), {"--num-return-sequences", "2"});
  auto r = run_cli(greedy_n);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("num_return_sequences"), std::string::npos) << r.out;
  auto penalty = base;
  penalty.insert(penalty.end(), {"--repetition-penalty", "0"});
  r = run_cli(penalty);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("repetition_penalty"), std::string::npos) << r.out;
  // A checkpoint whose generation_config.json asks for beam search.
  TempDir dir;
  for (const auto& entry : std::filesystem::directory_iterator(model)) {
    std::filesystem::copy(entry.path(), dir.path() / entry.path().filename());
  }
  std::filesystem::remove(dir.path() / "generation_config.json");
  std::ofstream(dir.file("generation_config.json")) << R"({"num_beams": 4, "eos_token_id": 1002})";
  auto beams = base;
  beams[2] = dir.path().string();
  r = run_cli(beams);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("num_beams"), std::string::npos) << r.out;
}

// The request limits as flags: refused with status 2 and the flag or key named.
TEST(RunCliLimitsGolden, FlagsBoundTheRequest) {
  GLIMPSE_REQUIRE_FIXTURES();
  const std::string model = fixtures_dir() + "/tiny-qwen2-vl/model";
  const std::string image = std::string(GLIMPSE_SOURCE_DIR) + "/examples/images/house.png";
  auto r = run_cli(
      {"run", "--model", model, "--image", image, "--prompt", "hi", "--max-image-pixels", "100"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("exceeds the limit of 100 pixels"), std::string::npos) << r.out;
  r = run_cli({"run", "--model", model, "--image", image, "--prompt", "hi", "--max-tokens", "5"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("(max_tokens)"), std::string::npos) << r.out;
  r = run_cli({"run", "--model", model, "--frames", image, "--frames", image, "--prompt", "hi",
               "--max-video-frames", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--max-video-frames"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace glimpse::test
