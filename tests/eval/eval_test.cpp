// glimpse eval: answer scoring as the benchmarks do, data set parsing with errors naming the line
// and key, shards that add up, and the inline scenes of the synthetic world.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "glimpse/core/error.h"
#include "glimpse/eval/dataset.h"
#include "glimpse/eval/evaluator.h"
#include "glimpse/eval/plot.h"
#include "glimpse/eval/scoring.h"
#include "glimpse/eval/sweep.h"
#include "test_util.h"

namespace glimpse::eval {
namespace {

const std::vector<std::string> kOptions = {"A. red", "B. blue", "C. green", "D. yellow"};

TEST(Scoring, NormalisesLikeVqa) {
  EXPECT_EQ(normalize_answer("  The Red.  "), "red");
  EXPECT_EQ(normalize_answer("two"), "2");
  EXPECT_EQ(normalize_answer("Top-Left!"), "top-left");
  EXPECT_EQ(normalize_answer("a  big\tcircle"), "big circle");
  EXPECT_TRUE(is_correct("Yes.", "yes", {}));
  EXPECT_TRUE(is_correct("three", "3", {}));
  EXPECT_FALSE(is_correct("red circle", "red", {}));
  EXPECT_FALSE(is_correct("", "red", {}));
}

TEST(Scoring, ParsesChoicesAsVlmEvalKit) {
  EXPECT_EQ(parse_choice("B", kOptions), 'B');
  EXPECT_EQ(parse_choice("B. blue", kOptions), 'B');
  EXPECT_EQ(parse_choice("(C) green", kOptions), 'C');
  EXPECT_EQ(parse_choice("The answer is D.", kOptions), 'D');
  EXPECT_EQ(parse_choice("green", kOptions), 'C');  // the text of one option
  EXPECT_EQ(parse_choice("A or B", kOptions), std::nullopt);
  EXPECT_EQ(parse_choice("Blue", kOptions), 'B');
  EXPECT_EQ(parse_choice("purple", kOptions), std::nullopt);
  EXPECT_EQ(parse_choice("E", kOptions), std::nullopt);  // not an option
  EXPECT_TRUE(is_correct("B", "B", kOptions));
  EXPECT_FALSE(is_correct("Bob", "B", kOptions));
  EXPECT_FALSE(is_correct("A", "B", kOptions));
}

std::string write(const test::TempDir& dir, const std::string& text) {
  const std::string p = dir.file("data.jsonl");
  std::ofstream(p) << text;
  return p;
}

std::string error_of(const std::string& path) {
  try {
    read_dataset(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Dataset, ReadsImagesScenesAndOptions) {
  test::TempDir dir;
  const demo::Sample s = demo::sample(3, 4);
  const std::string p = write(
      dir, R"({"image": "pics/a.png", "question": "What?", "answer": "red", "type": "colour"})"
           "\n\n" +
               dataset_line(s, "x7") + "\n");
  const auto items = read_dataset(p);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].image, dir.file("pics/a.png"));  // relative to the data file
  EXPECT_EQ(items[0].id, "0");
  EXPECT_EQ(items[0].type, "colour");
  EXPECT_EQ(items[1].id, "x7");
  ASSERT_TRUE(items[1].scene.has_value());
  EXPECT_EQ(demo::render(*items[1].scene), demo::render(s.scene));  // the same picture back
  EXPECT_EQ(items[1].question, s.question.question);
  EXPECT_EQ(items[1].options, s.question.options);
}

TEST(Dataset, ErrorsNameTheLineAndKey) {
  test::TempDir dir;
  EXPECT_NE(error_of(write(dir, "{\"image\": \"a.png\", \"answer\": \"x\"}\n"))
                .find(":1: expected key 'question'"),
            std::string::npos);
  EXPECT_NE(error_of(write(dir, "\n{not json\n")).find(":2: not a JSON line"), std::string::npos);
  // Parsed strictly: a repeated key is refused, not silently resolved.
  EXPECT_NE(
      error_of(write(dir, R"({"question": "a", "question": "b", "answer": "x", "image": "i"})"))
          .find(":1: not a JSON line"),
      std::string::npos);
  EXPECT_NE(error_of(write(dir, R"({"question": "q", "answer": "a"})"))
                .find("exactly one of 'image' and 'scene'"),
            std::string::npos);
  const std::string bad_scene =
      R"({"question": "q", "answer": "a", "scene": {"seed": 1, "size": 168, "objects": [{"shape": "hexagon", "colour": "red", "quadrant": 0, "box": [1, 1, 20, 20]}]}})";
  EXPECT_NE(error_of(write(dir, bad_scene)).find("objects[0].shape: expected one of"),
            std::string::npos);
  const std::string outside =
      R"({"question": "q", "answer": "a", "scene": {"seed": 1, "size": 168, "objects": [{"shape": "star", "colour": "red", "quadrant": 0, "box": [70, 1, 100, 20]}]}})";
  EXPECT_NE(error_of(write(dir, outside)).find("inside quadrant 0"), std::string::npos);
  EXPECT_NE(error_of(write(dir, R"({"question": 3, "answer": "a", "image": "x"})"))
                .find(".question: expected a string"),
            std::string::npos);
  EXPECT_NE(error_of(write(dir, "")).find("no items"), std::string::npos);
  EXPECT_NE(error_of(dir.file("absent.jsonl")).find("cannot open"), std::string::npos);
}

TEST(Dataset, ShardsAreDisjointAndCoverEverything) {
  std::vector<Item> items(7);
  for (int i = 0; i < 7; ++i) items[i].id = std::to_string(i);
  std::vector<std::string> seen;
  for (int s = 0; s < 3; ++s)
    for (const auto& it : shard(items, s, 3)) seen.push_back(it.id);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"}));
  EXPECT_THROW(shard(items, 3, 3), InputError);
  EXPECT_THROW(shard(items, 0, 0), InputError);
}

TEST(Totals, ShardsAddUpThroughTheirSums) {
  Totals a, b, whole;
  for (int i = 0; i < 5; ++i) {
    ItemResult r;
    r.type = i % 2 ? "colour" : "count";
    r.correct = i % 3 == 0;
    r.latency_ms = i;
    r.prefill_flops = 10.0 * i;
    r.kv_bytes = 100 * i;
    r.prompt_tokens = 80 + i;
    (i < 2 ? a : b).add(r);
    whole.add(r);
  }
  Totals merged = Totals::from_sums(a.sums());
  merged.merge(Totals::from_sums(b.sums()));
  EXPECT_EQ(merged.to_json(), whole.to_json());
  EXPECT_DOUBLE_EQ(whole.to_json()["accuracy"].get<double>(), 2.0 / 5);
  EXPECT_DOUBLE_EQ(whole.to_json()["by_type"]["count"].get<double>(), 1.0 / 3);  // 0 of 0, 2, 4
  EXPECT_THROW(Totals::from_sums({{"items", 1}}), InputError);
}

}  // namespace
}  // namespace glimpse::eval

namespace glimpse::eval {
namespace {

TEST(Sweep, ParsesAndSetsTheKey) {
  const Sweep s = parse_sweep("fastv.ratio=0.25,0.5,1");
  EXPECT_EQ(s.method, "fastv");
  EXPECT_EQ(s.key, "ratio");
  ASSERT_EQ(s.values.size(), 3u);
  EXPECT_EQ(s.values[0], 0.25);
  EXPECT_TRUE(s.values[2].is_number_integer());
  EXPECT_EQ(parse_sweep("attention_map.query=last,all").values[1], "all");
  for (const char* bad :
       {"fastv", "fastv.ratio", "fastv.ratio=", ".ratio=1", "fastv.=1", "fastv.ratio=1,,2"})
    EXPECT_THROW(parse_sweep(bad), InputError) << bad;
  // Into a base that has the method: its other keys stay; into one that lacks it: appended.
  const auto with = nlohmann::json::parse(
      sweep_pipeline(R"({"methods": [{"type": "fastv", "layer": 2, "ratio": 0.1}]})", s, 0.5));
  EXPECT_EQ(with["methods"][0]["layer"], 2);
  EXPECT_EQ(with["methods"][0]["ratio"], 0.5);
  const auto without = nlohmann::json::parse(sweep_pipeline("", s, 0.75));
  EXPECT_EQ(without["methods"][0]["type"], "fastv");
  EXPECT_EQ(without["methods"][0]["ratio"], 0.75);
  EXPECT_THROW(sweep_pipeline("[1]", s, 1), InputError);
  EXPECT_THROW(sweep_pipeline("{bad", s, 1), InputError);
}

TEST(Plot, MarkersLandWhereTheFrameSays) {
  const std::vector<PlotPoint> pts = {{1.0, 0.9, "plain"}, {0.5, 0.6, "0.5"}, {0.25, 0.2, "0.75"}};
  PlotOptions o;
  const vision::Image img = plot_tradeoff(pts, o);
  ASSERT_EQ(img.width, o.width);
  ASSERT_EQ(img.height, o.height);
  const PlotFrame f = PlotFrame::fit(pts, o);
  for (const auto& p : pts) {
    const std::uint8_t* px = img.pixel(f.px(p.x), f.py(p.y));
    EXPECT_EQ(px[0], 200) << p.label;  // the marker's colour at its centre
    EXPECT_EQ(px[1], 60) << p.label;
    EXPECT_EQ(px[2], 40) << p.label;
  }
  // Larger x to the right, larger accuracy higher up.
  EXPECT_GT(f.px(1.0), f.px(0.5));
  EXPECT_LT(f.py(0.9), f.py(0.6));
  EXPECT_THROW(plot_tradeoff({}, o), InputError);
  EXPECT_THROW(plot_tradeoff({{std::nan(""), 0.5, "x"}}, o), InputError);
  o.width = 10;
  EXPECT_THROW(plot_tradeoff(pts, o), InputError);
}

}  // namespace
}  // namespace glimpse::eval
