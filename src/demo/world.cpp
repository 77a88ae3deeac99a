#include "glimpse/demo/world.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <set>

#include "glimpse/core/error.h"

namespace glimpse::demo {
namespace {

// SplitMix64: the same stream on every platform (std's distributions are not specified bit for
// bit, and the data sets are seeds).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int uniform(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }
  int range(int lo, int hi) { return lo + uniform(hi - lo + 1); }  // inclusive
  double unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform(static_cast<int>(i))]);
  }

 private:
  std::uint64_t state_;
};

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  Rng r(a ^ (b * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  r.next();
  return r.next();
}

constexpr std::array<const char*, kNumShapes> kShapeNames = {"circle", "square", "triangle",
                                                             "star"};
constexpr std::array<const char*, kNumColours> kColourNames = {"red",    "green",  "blue",
                                                               "yellow", "purple", "orange"};
constexpr std::array<const char*, 4> kQuadrants = {"top-left", "top-right", "bottom-left",
                                                   "bottom-right"};
constexpr std::array<const char*, kNumQuestionTypes> kTypeNames = {
    "colour", "shape", "count", "exists", "position", "text", "choice"};
// RGB of each colour before jitter.
constexpr std::array<std::array<int, 3>, kNumColours> kRgb = {
    {{215, 40, 40}, {40, 165, 60}, {45, 85, 220}, {235, 210, 40}, {150, 60, 190}, {245, 140, 30}}};

int clamp_byte(int v) {
  return std::min(255, std::max(0, v));
}

// The filled outline of an object, in the picture's pixels.
void draw_shape(cv::Mat& img, const Object& o, const cv::Scalar& colour) {
  const double cx = (o.box.x0 + o.box.x1) / 2.0, cy = (o.box.y0 + o.box.y1) / 2.0;
  const double r = (o.box.x1 - o.box.x0) / 2.0;
  const int shift = 4;  // sub-pixel vertices, as cv::fillPoly allows
  auto pt = [&](double x, double y) {
    return cv::Point(static_cast<int>(std::lround(x * (1 << shift))),
                     static_cast<int>(std::lround(y * (1 << shift))));
  };
  std::vector<cv::Point> poly;
  switch (o.shape) {
    case Shape::Circle:
      cv::circle(img, pt(cx - 0.5, cy - 0.5), static_cast<int>(std::lround(r * (1 << shift))),
                 colour, cv::FILLED, cv::LINE_AA, shift);
      return;
    case Shape::Square:
      poly = {pt(o.box.x0, o.box.y0), pt(o.box.x1 - 1, o.box.y0), pt(o.box.x1 - 1, o.box.y1 - 1),
              pt(o.box.x0, o.box.y1 - 1)};
      break;
    case Shape::Triangle:
      poly = {pt(cx - 0.5, o.box.y0), pt(o.box.x1 - 1, o.box.y1 - 1), pt(o.box.x0, o.box.y1 - 1)};
      break;
    case Shape::Star:
      for (int k = 0; k < 10; ++k) {
        const double a = -M_PI / 2 + k * M_PI / 5;
        const double rr = (k % 2 == 0 ? r : 0.45 * r) - 0.5;
        poly.push_back(pt(cx - 0.5 + rr * std::cos(a), cy - 0.5 + rr * std::sin(a) + 0.1 * r));
      }
      break;
  }
  const cv::Point* pts = poly.data();
  const int n = static_cast<int>(poly.size());
  cv::fillPoly(img, &pts, &n, 1, colour, cv::LINE_AA, shift);
}

constexpr double kSignScale = 0.5;
constexpr int kSignPad = 4;

cv::Size sign_size(const std::string& word) {
  int baseline = 0;
  const cv::Size t = cv::getTextSize(word, cv::FONT_HERSHEY_SIMPLEX, kSignScale, 1, &baseline);
  return {t.width + 2 * kSignPad, t.height + baseline + 2 * kSignPad};
}

Box place_in_quadrant(Rng& rng, int quadrant, int size, int w, int h) {
  const int half = size / 2, margin = 3;
  const int qx = (quadrant % 2) * half, qy = (quadrant / 2) * half;
  Box b;
  b.x0 = qx + rng.range(margin, std::max(margin, half - margin - w));
  b.y0 = qy + rng.range(margin, std::max(margin, half - margin - h));
  b.x1 = b.x0 + w;
  b.y1 = b.y0 + h;
  return b;
}

}  // namespace

const char* shape_name(Shape shape) {
  return kShapeNames[static_cast<int>(shape)];
}
const char* colour_name(Colour colour) {
  return kColourNames[static_cast<int>(colour)];
}
const char* quadrant_name(int quadrant) {
  return kQuadrants[quadrant & 3];
}
const char* question_type_name(QuestionType type) {
  return kTypeNames[static_cast<int>(type)];
}

const std::vector<std::string>& sign_words() {
  static const std::vector<std::string> words = {"stop", "go",  "cat",  "dog",  "sun",  "box",
                                                 "hat",  "car", "fish", "tree", "moon", "cup"};
  return words;
}

std::vector<std::string> answer_words() {
  std::vector<std::string> out(kColourNames.begin(), kColourNames.end());
  out.insert(out.end(), kShapeNames.begin(), kShapeNames.end());
  out.insert(out.end(), kQuadrants.begin(), kQuadrants.end());
  out.insert(out.end(), sign_words().begin(), sign_words().end());
  for (const char* w : {"1", "2", "3", "4", "yes", "no", "A", "B", "C", "D", "none", "sign"})
    out.emplace_back(w);
  return out;
}

WorldOptions world_options_for_size(int size) {
  WorldOptions w;
  w.size = size;
  w.max_object = std::max(14, std::min(w.max_object, size / 2 - 6));
  w.min_object = std::min(w.min_object, w.max_object);
  return w;
}

Scene make_scene(std::uint64_t seed, const WorldOptions& options) {
  if (options.size < 56 || options.size > 1024 || options.size % 28 != 0)
    throw InputError("world option size: expected a multiple of 28 in [56, 1024], got " +
                     std::to_string(options.size));
  if (options.min_object < 14 || options.max_object < options.min_object ||
      options.max_object > options.size / 2 - 6)
    throw InputError(
        "world options min_object/max_object: expected 14 <= min <= max <= size/2 - 6");
  Rng rng(mix(seed, 1));
  Scene s;
  s.seed = seed;
  s.size = options.size;
  std::vector<int> quadrants = {0, 1, 2, 3};
  rng.shuffle(quadrants);
  int next_quadrant = 0;
  if (rng.unit() < options.sign_probability) {
    const auto& words = sign_words();
    Sign sign;
    sign.word = words[rng.uniform(static_cast<int>(words.size()))];
    sign.quadrant = quadrants[next_quadrant++];
    const cv::Size sz = sign_size(sign.word);
    sign.box = place_in_quadrant(rng, sign.quadrant, s.size, sz.width, sz.height);
    s.sign = sign;
  }
  const int count = rng.range(1, 4 - next_quadrant);
  std::vector<int> shapes = {0, 1, 2, 3}, colours = {0, 1, 2, 3, 4, 5};
  rng.shuffle(shapes);
  rng.shuffle(colours);
  for (int i = 0; i < count; ++i) {
    Object o;
    o.shape = static_cast<Shape>(shapes[i]);
    o.colour = static_cast<Colour>(colours[i]);
    o.quadrant = quadrants[next_quadrant++];
    const int side = rng.range(options.min_object, options.max_object);
    o.box = place_in_quadrant(rng, o.quadrant, s.size, side, side);
    s.objects.push_back(o);
  }
  return s;
}

vision::Image render(const Scene& scene) {
  Rng rng(mix(scene.seed, 2));
  const int n = scene.size;
  // A light, low-saturation background with one of four textures.
  std::array<int, 3> base;
  const int grey = rng.range(150, 225);
  for (int& c : base) c = grey + rng.range(-18, 18);
  const int texture = rng.uniform(4), period = rng.range(6, 16), amp = rng.range(6, 18);
  cv::Mat img(n, n, CV_8UC3);
  for (int y = 0; y < n; ++y) {
    auto* row = img.ptr<std::uint8_t>(y);
    for (int x = 0; x < n; ++x) {
      int t = 0;
      switch (texture) {
        case 0:
          t = 0;
          break;
        case 1:
          t = ((x + y) / period) % 2 ? amp : -amp;
          break;  // stripes
        case 2:
          t = ((x / period) + (y / period)) % 2 ? amp : -amp;
          break;  // checks
        case 3:
          t = (x % period < 2 || y % period < 2) ? -amp : 0;
          break;  // grid
      }
      const int noise = rng.range(-6, 6);
      for (int c = 0; c < 3; ++c)
        row[3 * x + c] = static_cast<std::uint8_t>(clamp_byte(base[c] + t + noise));
    }
  }
  for (const Object& o : scene.objects) {
    const auto& rgb = kRgb[static_cast<int>(o.colour)];
    cv::Scalar colour;
    for (int c = 0; c < 3; ++c) colour[c] = clamp_byte(rgb[c] + rng.range(-15, 15));
    draw_shape(img, o, colour);
  }
  if (scene.sign) {
    const Sign& s = *scene.sign;
    cv::rectangle(img, cv::Point(s.box.x0, s.box.y0), cv::Point(s.box.x1 - 1, s.box.y1 - 1),
                  cv::Scalar(250, 250, 245), cv::FILLED);
    cv::rectangle(img, cv::Point(s.box.x0, s.box.y0), cv::Point(s.box.x1 - 1, s.box.y1 - 1),
                  cv::Scalar(60, 60, 60), 1);
    int baseline = 0;
    const cv::Size t = cv::getTextSize(s.word, cv::FONT_HERSHEY_SIMPLEX, kSignScale, 1, &baseline);
    cv::putText(img, s.word, cv::Point(s.box.x0 + kSignPad, s.box.y0 + kSignPad + t.height),
                cv::FONT_HERSHEY_SIMPLEX, kSignScale, cv::Scalar(20, 20, 20), 1, cv::LINE_AA);
  }
  vision::Image out(n, n);
  for (int y = 0; y < n; ++y) std::memcpy(out.row(y), img.ptr<std::uint8_t>(y), out.row_bytes());
  return out;
}

namespace {

std::string option_list(Rng& rng, const std::string& answer, std::vector<std::string> pool,
                        Question& q) {
  pool.erase(std::remove(pool.begin(), pool.end(), answer), pool.end());
  rng.shuffle(pool);
  std::vector<std::string> opts = {answer, pool[0], pool[1], pool[2]};
  rng.shuffle(opts);
  std::string text;
  for (int i = 0; i < 4; ++i) {
    const std::string letter(1, static_cast<char>('A' + i));
    q.options.push_back(letter + ". " + opts[i]);
    text += "\n" + q.options.back();
    if (opts[i] == answer) q.answer = letter;
  }
  // The instruction LLaVA's and lmms-eval's multiple-choice prompts end with.
  return text + "\nAnswer with the option's letter from the given choices directly.";
}

}  // namespace

Question ask(const Scene& scene, std::uint64_t seed) {
  Rng rng(mix(seed, 3));
  // Weights of the types (Text only with a sign).
  std::vector<std::pair<QuestionType, int>> types = {
      {QuestionType::Colour, 4}, {QuestionType::Shape, 4},    {QuestionType::Count, 3},
      {QuestionType::Exists, 3}, {QuestionType::Position, 4}, {QuestionType::Choice, 2}};
  if (scene.sign) types.push_back({QuestionType::Text, 3});
  int total = 0;
  for (const auto& t : types) total += t.second;
  int pick = rng.uniform(total);
  QuestionType type = types.back().first;
  for (const auto& t : types) {
    if (pick < t.second) {
      type = t.first;
      break;
    }
    pick -= t.second;
  }
  Question q;
  q.type = type;
  const Object& o = scene.objects[rng.uniform(static_cast<int>(scene.objects.size()))];
  const std::string shape = shape_name(o.shape), colour = colour_name(o.colour);
  switch (type) {
    case QuestionType::Colour:
      q.question = rng.uniform(2) ? "What colour is the " + shape + "?"
                                  : "What is the colour of the " + shape + "?";
      q.answer = colour;
      break;
    case QuestionType::Shape:
      q.question = rng.uniform(2) ? "What shape is the " + colour + " object?"
                                  : "Which shape is " + colour + "?";
      q.answer = shape;
      break;
    case QuestionType::Count:
      q.question =
          rng.uniform(2) ? "How many shapes are there?" : "How many shapes are in the picture?";
      q.answer = std::to_string(scene.objects.size());
      break;
    case QuestionType::Exists: {
      Shape s = o.shape;
      Colour c = o.colour;
      const bool yes = rng.uniform(2) == 0;
      if (!yes) {
        // Half of the negatives are hard: a shape that is there, in another colour.
        auto present = [&](Shape sh, Colour co) {
          for (const Object& x : scene.objects)
            if (x.shape == sh && x.colour == co) return true;
          return false;
        };
        do {
          if (rng.uniform(2) == 0) s = static_cast<Shape>(rng.uniform(kNumShapes));
          c = static_cast<Colour>(rng.uniform(kNumColours));
        } while (present(s, c));
      }
      q.question = std::string("Is there a ") + colour_name(c) + " " + shape_name(s) + "?";
      q.answer = yes ? "yes" : "no";
      break;
    }
    case QuestionType::Position:
      q.question = "Where is the " + colour + " " + shape + "?";
      q.answer = quadrant_name(o.quadrant);
      break;
    case QuestionType::Text:
      q.question = rng.uniform(2) ? "What does the sign say?" : "What word is on the sign?";
      q.answer = scene.sign->word;
      break;
    case QuestionType::Choice:
      if (rng.uniform(2)) {
        q.question = "What colour is the " + shape + "?" +
                     option_list(rng, colour, {kColourNames.begin(), kColourNames.end()}, q);
      } else {
        q.question = "What shape is the " + colour + " object?" +
                     option_list(rng, shape, {kShapeNames.begin(), kShapeNames.end()}, q);
      }
      break;
  }
  return q;
}

Sample sample(std::uint64_t seed, std::uint64_t index, const WorldOptions& options) {
  const std::uint64_t s = mix(seed, index);
  Sample out;
  out.scene = make_scene(s, options);
  out.question = ask(out.scene, mix(s, 7));
  return out;
}

std::vector<CellLabel> cell_labels(const Scene& scene, int cell, double min_cover) {
  if (cell <= 0 || scene.size % cell != 0)
    throw InputError("cell_labels: cell " + std::to_string(cell) + " does not divide the picture");
  const int g = scene.size / cell;
  std::vector<CellLabel> out(static_cast<std::size_t>(g) * g, CellLabel{"none", "none"});
  std::vector<int> best(out.size(), 0);
  auto cover = [&](const cv::Mat& mask, const CellLabel& label) {
    for (int r = 0; r < g; ++r) {
      for (int c = 0; c < g; ++c) {
        const int area = cv::countNonZero(mask(cv::Rect(c * cell, r * cell, cell, cell)));
        const std::size_t i = static_cast<std::size_t>(r) * g + c;
        if (area >= min_cover * cell * cell && area > best[i]) {
          best[i] = area;
          out[i] = label;
        }
      }
    }
  };
  for (const Object& o : scene.objects) {
    cv::Mat mask = cv::Mat::zeros(scene.size, scene.size, CV_8UC1);
    draw_shape(mask, o, cv::Scalar(255));
    cv::threshold(mask, mask, 127, 255, cv::THRESH_BINARY);
    cover(mask, {colour_name(o.colour), shape_name(o.shape)});
  }
  if (scene.sign) {
    cv::Mat mask = cv::Mat::zeros(scene.size, scene.size, CV_8UC1);
    const Box& b = scene.sign->box;
    cv::rectangle(mask, cv::Point(b.x0, b.y0), cv::Point(b.x1 - 1, b.y1 - 1), cv::Scalar(255),
                  cv::FILLED);
    cover(mask, {"sign", "sign"});
  }
  return out;
}

}  // namespace glimpse::demo

namespace glimpse::demo {
namespace {

nlohmann::json box_json(const Box& b) {
  return nlohmann::json::array({b.x0, b.y0, b.x1, b.y1});
}

template <class Names>
int index_of(const Names& names, const nlohmann::json& v, const std::string& where) {
  if (v.is_string()) {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (v.get<std::string>() == names[i]) return static_cast<int>(i);
  }
  std::string known;
  for (const auto& n : names) known += std::string(known.empty() ? "" : ", ") + n;
  throw InputError(where + ": expected one of " + known + ", got " + v.dump());
}

const nlohmann::json& member(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw InputError(where + ": expected key '" + key + "'");
  return j.at(key);
}

std::int64_t integer(const nlohmann::json& j, const char* key, const std::string& where,
                     std::int64_t lo, std::int64_t hi) {
  const auto& v = member(j, key, where);
  if (!v.is_number_integer() || v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi)
    throw InputError(where + "." + key + ": expected an integer in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got " + v.dump());
  return v.get<std::int64_t>();
}

Box parse_box(const nlohmann::json& j, const std::string& where, int size, int quadrant) {
  const auto& v = member(j, "box", where);
  const std::string at = where + ".box";
  if (!v.is_array() || v.size() != 4)
    throw InputError(at + ": expected [x0, y0, x1, y1], got " + v.dump().substr(0, 80));
  int c[4];
  for (int i = 0; i < 4; ++i) {
    if (!v[i].is_number_integer() || v[i].get<std::int64_t>() < 0 ||
        v[i].get<std::int64_t>() > size)
      throw InputError(at + ": expected integers in [0, " + std::to_string(size) + "]");
    c[i] = static_cast<int>(v[i].get<std::int64_t>());
  }
  const int half = size / 2, qx = (quadrant % 2) * half, qy = (quadrant / 2) * half;
  if (c[0] >= c[2] || c[1] >= c[3] || c[0] < qx || c[1] < qy || c[2] > qx + half ||
      c[3] > qy + half)
    throw InputError(at + ": expected a non-empty box inside quadrant " + std::to_string(quadrant) +
                     " (" + quadrant_name(quadrant) + ")");
  return {c[0], c[1], c[2], c[3]};
}

}  // namespace

nlohmann::json scene_to_json(const Scene& scene) {
  nlohmann::json objects = nlohmann::json::array();
  for (const Object& o : scene.objects) {
    objects.push_back({{"shape", shape_name(o.shape)},
                       {"colour", colour_name(o.colour)},
                       {"quadrant", o.quadrant},
                       {"box", box_json(o.box)}});
  }
  nlohmann::json j = {{"seed", scene.seed}, {"size", scene.size}, {"objects", objects}};
  if (scene.sign) {
    j["sign"] = {{"word", scene.sign->word},
                 {"quadrant", scene.sign->quadrant},
                 {"box", box_json(scene.sign->box)}};
  }
  return j;
}

Scene scene_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw InputError(where + ": expected an object");
  Scene s;
  const auto& seed = member(j, "seed", where);
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<std::int64_t>() >= 0))
    throw InputError(where + ".seed: expected a non-negative integer");
  s.seed = seed.get<std::uint64_t>();
  s.size = static_cast<int>(integer(j, "size", where, 56, 1024));
  if (s.size % 28 != 0) throw InputError(where + ".size: expected a multiple of 28");
  const auto& objects = member(j, "objects", where);
  if (!objects.is_array() || objects.empty() || objects.size() > 4)
    throw InputError(where + ".objects: expected 1 to 4 objects");
  std::set<int> shapes, colours, quadrants;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    const std::string at = where + ".objects[" + std::to_string(i) + "]";
    Object o;
    o.shape =
        static_cast<Shape>(index_of(kShapeNames, member(objects[i], "shape", at), at + ".shape"));
    o.colour = static_cast<Colour>(
        index_of(kColourNames, member(objects[i], "colour", at), at + ".colour"));
    o.quadrant = static_cast<int>(integer(objects[i], "quadrant", at, 0, 3));
    o.box = parse_box(objects[i], at, s.size, o.quadrant);
    if (!shapes.insert(static_cast<int>(o.shape)).second ||
        !colours.insert(static_cast<int>(o.colour)).second || !quadrants.insert(o.quadrant).second)
      throw InputError(at + ": shape, colour and quadrant must differ from the other objects'");
    s.objects.push_back(o);
  }
  if (j.contains("sign") && !j.at("sign").is_null()) {
    const std::string at = where + ".sign";
    Sign sign;
    const auto& word = member(j.at("sign"), "word", at);
    sign.word = sign_words()[index_of(sign_words(), word, at + ".word")];
    sign.quadrant = static_cast<int>(integer(j.at("sign"), "quadrant", at, 0, 3));
    sign.box = parse_box(j.at("sign"), at, s.size, sign.quadrant);
    if (!quadrants.insert(sign.quadrant).second)
      throw InputError(at + ".quadrant: taken by an object");
    s.sign = sign;
  }
  return s;
}

}  // namespace glimpse::demo
