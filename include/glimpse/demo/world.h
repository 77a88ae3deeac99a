#pragma once

// A synthetic visual world for the demo model (glimpse train-demo, glimpse eval): square pictures
// of one to four shapes (circle, square, triangle, star) in six colours on a textured background,
// sometimes a sign with a word on it, and questions about them with one-word answers. Everything
// is a pure function of a seed, so a data set is a seed and an index range, and a held-out split
// is another seed.
//
// Every object has a shape and a colour of its own and a quadrant of its own, so that "the red
// one", "the circle" and "where is" always have one answer.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/vision/image.h"

namespace glimpse::demo {

enum class Shape { Circle, Square, Triangle, Star };
enum class Colour { Red, Green, Blue, Yellow, Purple, Orange };
inline constexpr int kNumShapes = 4;
inline constexpr int kNumColours = 6;

const char* shape_name(Shape shape);
const char* colour_name(Colour colour);
// The answer of a position question for quadrant q (0 top left, 1 top right, 2 bottom left,
// 3 bottom right): "top-left", ...
const char* quadrant_name(int quadrant);
// The words a sign may show.
const std::vector<std::string>& sign_words();

struct Box {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // pixels; x1, y1 exclusive
};

struct Object {
  Shape shape = Shape::Circle;
  Colour colour = Colour::Red;
  int quadrant = 0;
  Box box;  // the square the shape is drawn in
};

struct Sign {
  std::string word;
  int quadrant = 0;
  Box box;
};

struct WorldOptions {
  int size = 168;  // picture side in pixels (a multiple of 28: one merged token per cell)
  // Object side in pixels (at least 14: one patch). From 24: with 16-px objects a cell often holds
  // a sliver of one, and the demo model's tower learnt shape far more slowly (docs/DEMO_MODEL.md).
  int min_object = 24;
  int max_object = 56;
  double sign_probability = 0.3;
};

// The default options for pictures of side `size`, objects shrunk to fit a quadrant (side at most
// size / 2 - 6) when the picture is small.
WorldOptions world_options_for_size(int size);

struct Scene {
  std::uint64_t seed = 0;  // also draws the background and the colour jitter
  int size = 168;
  std::vector<Object> objects;
  std::optional<Sign> sign;
};

// The scene of `seed`. Throws InputError naming the option when `options` cannot make one.
Scene make_scene(std::uint64_t seed, const WorldOptions& options = {});
// The picture of a scene (deterministic).
vision::Image render(const Scene& scene);

enum class QuestionType { Colour, Shape, Count, Exists, Position, Text, Choice };
inline constexpr int kNumQuestionTypes = 7;
// "colour", "shape", "count", "exists", "position", "text", "choice".
const char* question_type_name(QuestionType type);

struct Question {
  QuestionType type = QuestionType::Colour;
  std::string question;
  std::string answer;
  // Choice questions: the options ("A. red" ...), in the order of the question text.
  std::vector<std::string> options;
};

// One question about `scene`, its type and wording drawn by `seed` among the types the scene
// supports (Text needs a sign).
Question ask(const Scene& scene, std::uint64_t seed);

struct Sample {
  Scene scene;
  Question question;
};

// Sample `index` of the stream of `seed`: the training data is (train seed, 0...), the held-out
// split (test seed, 0...).
Sample sample(std::uint64_t seed, std::uint64_t index, const WorldOptions& options = {});

// What covers each cell of side `cell` (row-major; the merged visual tokens of a Qwen2-VL model
// with patch 14 and merge 2 are the 28-px cells): the colour and shape words of the object that
// covers most of it (at least `min_cover` of the cell), "sign" for the sign, else "none".
struct CellLabel {
  std::string colour, shape;
};
std::vector<CellLabel> cell_labels(const Scene& scene, int cell = 28, double min_cover = 0.1);

// A scene as JSON ({"seed", "size", "objects": [{"shape", "colour", "quadrant", "box": [x0, y0,
// x1, y1]}], "sign": {"word", "quadrant", "box"}}): the inline spec of a data set line, which
// render() turns back into the same picture.
nlohmann::json scene_to_json(const Scene& scene);
// Throws InputError naming `where` and the key for anything make_scene would not make (unknown
// names, boxes outside the picture or their quadrant, repeated shapes, colours or quadrants).
Scene scene_from_json(const nlohmann::json& j, const std::string& where);

// Every word an answer or a cell label may be (the tokenizer gives each one token).
std::vector<std::string> answer_words();

}  // namespace glimpse::demo
