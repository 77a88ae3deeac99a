#pragma once

// Evaluation data sets (glimpse eval): JSON Lines, one question per line:
//   {"id": "...", "image": "pictures/0001.png" | "scene": {...inline spec...},
//    "question": "...", "answer": "...", "type": "colour", "options": ["A. red", ...]}
// "image" is relative to the data file's folder; "scene" is the synthetic world's inline spec
// (glimpse/demo/world.h scene_to_json), rendered when the item is run. "options" marks a
// multiple-choice item (its answer is the letter). "id" and "type" are optional.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/demo/world.h"

namespace glimpse::eval {

struct Item {
  std::string id;
  std::string image;                 // absolute or relative to the working folder, or empty
  std::optional<demo::Scene> scene;  // or an inline scene
  std::string question, answer;
  std::string type = "all";
  std::vector<std::string> options;
};

// Reads a data set. Throws InputError naming the file, the line and the key.
std::vector<Item> read_dataset(const std::string& path);

// The items of shard `index` of `count` (every count-th item from `index`): shards are disjoint
// and together hold every item.
std::vector<Item> shard(const std::vector<Item>& items, std::int64_t index, std::int64_t count);

// The line of a data set for a sample of the synthetic world (inline scene).
std::string dataset_line(const demo::Sample& sample, const std::string& id);

}  // namespace glimpse::eval
