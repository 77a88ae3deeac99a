#include "glimpse/core/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "glimpse/core/error.h"
#include "test_util.h"

namespace glimpse::core {
namespace {

const char* kText = R"({
  "model_type": "qwen2_vl", "hidden_size": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
  "tie_word_embeddings": true, "eos": [1, 2], "scale": [0.5, 1], "names": ["a", "b"],
  "vision_config": {"depth": 2, "embed_dim": "32"}, "nothing": null, "big": 18446744073709551615
})";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

TEST(ConfigTest, TypedGetters) {
  const auto c = Config::parse(kText, "config.json");
  EXPECT_EQ(c.get_string("model_type"), "qwen2_vl");
  EXPECT_EQ(c.get_int("hidden_size"), 64);
  EXPECT_DOUBLE_EQ(c.get_float("rms_norm_eps"), 1e-6);
  EXPECT_DOUBLE_EQ(c.get_float("rope_theta"), 1e6);  // integers are numbers too
  EXPECT_TRUE(c.get_bool("tie_word_embeddings"));
  EXPECT_EQ(c.get_int_list("eos"), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(c.get_float_list("scale"), (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(c.get_string_list("names"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.get_int("vision_config.depth"), 2);
  EXPECT_EQ(c.section("vision_config").get_int("depth"), 2);
  EXPECT_EQ(c.get_int("missing", 7), 7);
  EXPECT_EQ(c.get_int("nothing", 7), 7);  // null counts as absent, as in HF configs
  EXPECT_FALSE(c.has("nothing"));
  EXPECT_FALSE(c.find_section("text_config").has_value());
}

TEST(ConfigTest, ErrorsNameFileKeyExpectedAndFound) {
  const auto c = Config::parse(kText, "config.json");
  EXPECT_EQ(error_of([&] { c.get_int("num_layers"); }), "config.json: key 'num_layers': missing");
  EXPECT_EQ(error_of([&] { c.get_int("rms_norm_eps"); }),
            "config.json: key 'rms_norm_eps': expected an integer, found a number (1e-06)");
  EXPECT_EQ(error_of([&] { c.section("vision_config").get_int("embed_dim"); }),
            "config.json: key 'vision_config.embed_dim': expected an integer, found a string "
            "(\"32\")");
  EXPECT_EQ(error_of([&] { c.get_int_list("names"); }),
            "config.json: key 'names': element 0: expected an integer, found a string (\"a\")");
  EXPECT_EQ(error_of([&] { c.get_int("big"); }),
            "config.json: key 'big': expected an integer, found an integer (18446744073709551615)");
  EXPECT_EQ(error_of([&] { c.get_bool("hidden_size"); }),
            "config.json: key 'hidden_size': expected true or false, found an integer (64)");
  EXPECT_EQ(error_of([&] { c.section("model_type"); }),
            "config.json: key 'model_type': expected an object, found a string (\"qwen2_vl\")");
}

TEST(ConfigTest, LoadRejectsBadFiles) {
  test::TempDir dir;
  EXPECT_THROW(Config::load(dir.file("missing.json")), InputError);
  std::ofstream(dir.file("list.json")) << "[1,2]";
  EXPECT_THROW(Config::load(dir.file("list.json")), FormatError);
  std::ofstream(dir.file("bad.json")) << "{\"a\": 1,}";
  EXPECT_THROW(Config::load(dir.file("bad.json")), FormatError);
  std::ofstream(dir.file("dup.json")) << R"({"a": 1, "a": 2})";
  EXPECT_THROW(Config::load(dir.file("dup.json")), FormatError);
  std::ofstream(dir.file("ok.json")) << R"({"a": 1})";
  EXPECT_EQ(Config::load(dir.file("ok.json")).get_int("a"), 1);
}

}  // namespace
}  // namespace glimpse::core
