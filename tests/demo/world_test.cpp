// The synthetic world (glimpse/demo/world.h): deterministic, consistent answers, pixels where the
// scene says, cell labels where the objects are.
#include "glimpse/demo/world.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "glimpse/core/error.h"

namespace glimpse::demo {
namespace {

TEST(World, SameSeedSamePictureAndQuestion) {
  const Sample a = sample(5, 17), b = sample(5, 17), c = sample(5, 18);
  EXPECT_EQ(render(a.scene), render(b.scene));
  EXPECT_EQ(a.question.question, b.question.question);
  EXPECT_EQ(a.question.answer, b.question.answer);
  EXPECT_NE(render(a.scene), render(c.scene));
  EXPECT_NE(render(sample(6, 17).scene), render(a.scene));  // another seed, another split
}

TEST(World, ScenesKeepTheirInvariants) {
  const WorldOptions o;
  for (std::uint64_t s = 0; s < 300; ++s) {
    const Scene scene = make_scene(s, o);
    ASSERT_GE(scene.objects.size(), 1u);
    ASSERT_LE(scene.objects.size() + (scene.sign ? 1 : 0), 4u);
    std::set<int> shapes, colours, quadrants;
    for (const Object& ob : scene.objects) {
      shapes.insert(static_cast<int>(ob.shape));
      colours.insert(static_cast<int>(ob.colour));
      quadrants.insert(ob.quadrant);
      const int side = ob.box.x1 - ob.box.x0;
      EXPECT_EQ(side, ob.box.y1 - ob.box.y0);
      EXPECT_GE(side, o.min_object);
      EXPECT_LE(side, o.max_object);
      // Inside its own quadrant.
      const int half = o.size / 2;
      EXPECT_GE(ob.box.x0, (ob.quadrant % 2) * half);
      EXPECT_LE(ob.box.x1, (ob.quadrant % 2) * half + half);
      EXPECT_GE(ob.box.y0, (ob.quadrant / 2) * half);
      EXPECT_LE(ob.box.y1, (ob.quadrant / 2) * half + half);
    }
    if (scene.sign) quadrants.insert(scene.sign->quadrant);
    EXPECT_EQ(shapes.size(), scene.objects.size());
    EXPECT_EQ(colours.size(), scene.objects.size());
    EXPECT_EQ(quadrants.size(), scene.objects.size() + (scene.sign ? 1 : 0));
  }
}

TEST(World, ObjectsArePaintedInTheirColour) {
  const int rgb[kNumColours][3] = {{215, 40, 40},  {40, 165, 60},  {45, 85, 220},
                                   {235, 210, 40}, {150, 60, 190}, {245, 140, 30}};
  for (std::uint64_t s = 0; s < 50; ++s) {
    const Scene scene = make_scene(s);
    const vision::Image img = render(scene);
    for (const Object& ob : scene.objects) {
      // The centre of every shape is inside it (the star's too, shifted down a little).
      const int cx = (ob.box.x0 + ob.box.x1) / 2, cy = (ob.box.y0 + ob.box.y1) / 2;
      const std::uint8_t* p = img.pixel(cx, cy);
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(p[c], rgb[static_cast<int>(ob.colour)][c], 16)
            << "seed " << s << " " << shape_name(ob.shape) << " channel " << c;
    }
  }
}

TEST(World, AnswersFollowFromTheScene) {
  std::map<std::string, int> types;
  int yes = 0, exists = 0;
  for (std::uint64_t i = 0; i < 3000; ++i) {
    const Sample smp = sample(1, i);
    const Scene& sc = smp.scene;
    const Question& q = smp.question;
    ++types[question_type_name(q.type)];
    auto named = [&](const Object& o) {
      return q.question.find(std::string(" ") + shape_name(o.shape)) != std::string::npos;
    };
    auto coloured = [&](const Object& o) {
      return q.question.find(std::string(" ") + colour_name(o.colour) + " ") != std::string::npos ||
             q.question.find(std::string(" ") + colour_name(o.colour) + "?") != std::string::npos;
    };
    switch (q.type) {
      case QuestionType::Colour:
        for (const Object& o : sc.objects) {
          if (named(o)) {
            EXPECT_EQ(q.answer, colour_name(o.colour)) << q.question;
          }
        }
        break;
      case QuestionType::Shape:
        for (const Object& o : sc.objects) {
          if (coloured(o)) {
            EXPECT_EQ(q.answer, shape_name(o.shape)) << q.question;
          }
        }
        break;
      case QuestionType::Count:
        EXPECT_EQ(q.answer, std::to_string(sc.objects.size()));
        break;
      case QuestionType::Exists: {
        bool present = false;
        for (const Object& o : sc.objects) present = present || (named(o) && coloured(o));
        EXPECT_EQ(q.answer, present ? "yes" : "no") << q.question;
        ++exists;
        yes += present;
        break;
      }
      case QuestionType::Position:
        for (const Object& o : sc.objects) {
          if (named(o)) {
            EXPECT_EQ(q.answer, quadrant_name(o.quadrant)) << q.question;
          }
        }
        break;
      case QuestionType::Text:
        ASSERT_TRUE(sc.sign.has_value());
        EXPECT_EQ(q.answer, sc.sign->word);
        break;
      case QuestionType::Choice: {
        ASSERT_EQ(q.options.size(), 4u);
        ASSERT_EQ(q.answer.size(), 1u);
        const std::string chosen = q.options[q.answer[0] - 'A'].substr(3);
        bool right = false;
        for (const Object& o : sc.objects)
          right = right || (named(o) && chosen == colour_name(o.colour)) ||
                  (coloured(o) && chosen == shape_name(o.shape));
        EXPECT_TRUE(right) << q.question << " -> " << q.answer;
        break;
      }
    }
  }
  EXPECT_EQ(types.size(), static_cast<std::size_t>(kNumQuestionTypes));
  for (const auto& [t, n] : types) EXPECT_GE(n, 80) << t;  // text: only with a sign
  EXPECT_NEAR(static_cast<double>(yes) / exists, 0.5, 0.06);
}

TEST(World, CellLabelsCoverTheObjects) {
  for (std::uint64_t s = 0; s < 100; ++s) {
    const Scene scene = make_scene(s);
    const auto labels = cell_labels(scene);
    ASSERT_EQ(labels.size(), 36u);  // 168 px: 6 x 6 cells of 28 px
    for (const Object& o : scene.objects) {
      const int cx = (o.box.x0 + o.box.x1) / 2, cy = (o.box.y0 + o.box.y1) / 2;
      const auto& l = labels[(cy / 28) * 6 + cx / 28];
      // The cell of the centre shows this object, unless another covers more of it (they never
      // share a quadrant, so only at a quadrant border, which a centre cell is not for a large
      // object).
      if (o.box.x1 - o.box.x0 >= 28) {
        EXPECT_EQ(l.colour, colour_name(o.colour)) << "seed " << s;
        EXPECT_EQ(l.shape, shape_name(o.shape)) << "seed " << s;
      }
    }
    int none = 0;
    for (const auto& l : labels) none += l.colour == "none";
    EXPECT_GT(none, 0);
  }
}

TEST(World, BadOptionsAreRefused) {
  WorldOptions o;
  o.size = 100;
  EXPECT_THROW(make_scene(0, o), InputError);
  o.size = 168;
  o.min_object = 8;
  EXPECT_THROW(make_scene(0, o), InputError);
  o.min_object = 16;
  o.max_object = 200;
  EXPECT_THROW(make_scene(0, o), InputError);
}

}  // namespace
}  // namespace glimpse::demo
