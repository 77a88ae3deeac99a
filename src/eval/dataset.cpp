#include "glimpse/eval/dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/json_util.h"
#include "glimpse/core/error.h"

namespace glimpse::eval {
namespace {

using json = nlohmann::json;

std::string text_key(const json& j, const char* key, const std::string& where, bool required) {
  if (!j.contains(key)) {
    if (required) throw InputError(where + ": expected key '" + key + "'");
    return {};
  }
  const json& v = j.at(key);
  if (v.is_number_integer() && std::string(key) == "id")
    return std::to_string(v.get<std::int64_t>());
  if (!v.is_string())
    throw InputError(where + "." + key + ": expected a string, got " + v.type_name());
  return v.get<std::string>();
}

}  // namespace

std::vector<Item> read_dataset(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open the data set");
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::vector<Item> items;
  std::string line;
  std::int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    // Strict: invalid UTF-8, deep nesting and repeated keys are refused (core/json_util.h).
    json j;
    try {
      j = core::parse_json_strict(line, "JSON");
    } catch (const FormatError& e) {
      throw InputError(where + ": not a JSON line (" + std::string(e.what()).substr(0, 160) + ")");
    }
    if (!j.is_object()) throw InputError(where + ": expected a JSON object");
    Item item;
    item.id = text_key(j, "id", where, false);
    if (item.id.empty()) item.id = std::to_string(items.size());
    item.question = text_key(j, "question", where, true);
    item.answer = text_key(j, "answer", where, true);
    const std::string type = text_key(j, "type", where, false);
    if (!type.empty()) item.type = type;
    const bool has_image = j.contains("image"), has_scene = j.contains("scene");
    if (has_image == has_scene)
      throw InputError(where + ": expected exactly one of 'image' and 'scene'");
    if (has_image) {
      const std::string image = text_key(j, "image", where, true);
      const std::filesystem::path p(image);
      item.image = p.is_absolute() ? image : (folder / p).string();
    } else {
      item.scene = demo::scene_from_json(j.at("scene"), where + ": scene");
    }
    if (j.contains("options")) {
      const json& o = j.at("options");
      if (!o.is_array() || o.size() < 2 || o.size() > 26)
        throw InputError(where + ".options: expected 2 to 26 strings");
      for (const auto& v : o) {
        if (!v.is_string()) throw InputError(where + ".options: expected strings");
        item.options.push_back(v.get<std::string>());
      }
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) throw InputError(path + ": no items");
  return items;
}

std::vector<Item> shard(const std::vector<Item>& items, std::int64_t index, std::int64_t count) {
  if (count < 1 || index < 0 || index >= count)
    throw InputError("--shard " + std::to_string(index) + "/" + std::to_string(count) +
                     ": expected I/N with 0 <= I < N");
  std::vector<Item> out;
  for (std::size_t i = static_cast<std::size_t>(index); i < items.size();
       i += static_cast<std::size_t>(count))
    out.push_back(items[i]);
  return out;
}

std::string dataset_line(const demo::Sample& sample, const std::string& id) {
  json j = {{"id", id},
            {"scene", demo::scene_to_json(sample.scene)},
            {"question", sample.question.question},
            {"answer", sample.question.answer},
            {"type", demo::question_type_name(sample.question.type)}};
  if (!sample.question.options.empty()) j["options"] = sample.question.options;
  return j.dump();
}

}  // namespace glimpse::eval
