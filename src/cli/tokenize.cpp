// glimpse tokenize / detokenize: text <-> token ids with a checkpoint's tokenizer.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "core/json_util.h"
#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::cli {
namespace {

using nlohmann::json;

struct CommonOptions {
  std::string tokenizer;
  std::string jsonl;
  std::string legacy;  // "", "true" or "false"
  bool json_out = false;
};

text::Tokenizer load_tokenizer(const CommonOptions& o) {
  text::TokenizerOptions options;
  if (o.legacy == "true") {
    options.legacy = true;
  } else if (o.legacy == "false") {
    options.legacy = false;
  } else if (!o.legacy.empty()) {
    throw InputError("--legacy: expected true or false, found '" + o.legacy + "'");
  }
  return text::Tokenizer::load(o.tokenizer, options);
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Calls `fn(value, where)` for each non-blank line of a JSON Lines file.
template <class Fn>
void for_each_jsonl(const std::string& path, Fn fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open '" + path + "'");
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    const std::string where = path + ": line " + std::to_string(number);
    fn(core::parse_json_strict(line, where), where);
  }
  if (in.bad()) throw InputError("cannot read '" + path + "'");
}

// "1,2,3" or "1 2 3".
std::vector<text::TokenId> parse_ids(const std::string& s) {
  std::vector<text::TokenId> ids;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ',' || s[i] == ' ' || s[i] == '\t')) ++i;
    if (i >= s.size()) break;
    const std::size_t start = i;
    if (s[i] == '-' || s[i] == '+') ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    const std::string item = s.substr(start, i - start);
    if (i < s.size() && s[i] != ',' && s[i] != ' ' && s[i] != '\t') {
      throw InputError("--ids: expected integers separated by commas, found '" + s + "'");
    }
    try {
      std::size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      ids.push_back(v);
    } catch (const std::exception&) {
      throw InputError("--ids: '" + item + "' is not an integer token id");
    }
  }
  return ids;
}

void print_encoding(const text::Encoding& e, bool json_out) {
  if (json_out) {
    std::printf("%s\n", dump(json{{"ids", e.ids}, {"tokens", e.tokens}}).c_str());
    return;
  }
  std::printf("ids:    %s\ntokens: %s\ncount:  %zu\n", dump(json(e.ids)).c_str(),
              dump(json(e.tokens)).c_str(), e.ids.size());
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("tokenize", "Encode text to token ids with a checkpoint's tokenizer");
  auto o = std::make_shared<CommonOptions>();
  auto text = std::make_shared<std::string>();
  auto add_special = std::make_shared<bool>(false);
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.json, vocab.json, tokenizer.model, or a checkpoint folder")
      ->required();
  auto* text_opt = cmd->add_option("--text", *text, "The text to encode");
  auto* jsonl_opt =
      cmd->add_option("--jsonl", o->jsonl, "A JSON Lines file of {\"text\": ...} objects");
  text_opt->excludes(jsonl_opt);
  cmd->add_flag("--add-special-tokens", *add_special,
                "Add the tokenizer's special tokens (e.g. BOS) as the post-processor says");
  cmd->add_option("--legacy", o->legacy,
                  "Llama legacy mode: true or false (default: as configured)");
  cmd->add_flag("--json", o->json_out,
                "Print one {\"ids\": [...], \"tokens\": [...]} line per input");
  cmd->callback([o, text, add_special, text_opt, jsonl_opt] {
    if (text_opt->count() == 0 && jsonl_opt->count() == 0) {
      throw InputError("tokenize: give --text or --jsonl");
    }
    const auto tok = load_tokenizer(*o);
    if (text_opt->count()) {
      print_encoding(tok.encode(*text, *add_special), o->json_out);
      return;
    }
    for_each_jsonl(o->jsonl, [&](const json& value, const std::string& where) {
      if (!value.is_object() || !value.contains("text") || !value["text"].is_string()) {
        throw InputError(where + ": expected an object with a string \"text\"");
      }
      print_encoding(tok.encode(value["text"].get<std::string>(), *add_special), o->json_out);
    });
  });
}

void add_detokenize_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("detokenize", "Decode token ids to text with a checkpoint's tokenizer");
  auto o = std::make_shared<CommonOptions>();
  auto ids = std::make_shared<std::string>();
  auto skip_special = std::make_shared<bool>(false);
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.json, vocab.json, tokenizer.model, or a checkpoint folder")
      ->required();
  auto* ids_opt = cmd->add_option("--ids", *ids, "Token ids, e.g. \"1,2,3\"");
  auto* jsonl_opt =
      cmd->add_option("--jsonl", o->jsonl, "A JSON Lines file of {\"ids\": [...]} objects");
  ids_opt->excludes(jsonl_opt);
  cmd->add_flag("--skip-special-tokens", *skip_special, "Leave special tokens out of the text");
  cmd->add_option("--legacy", o->legacy,
                  "Llama legacy mode: true or false (default: as configured)");
  cmd->add_flag("--json", o->json_out, "Print one {\"text\": ...} line per input");
  cmd->callback([o, ids, skip_special, ids_opt, jsonl_opt] {
    if (ids_opt->count() == 0 && jsonl_opt->count() == 0) {
      throw InputError("detokenize: give --ids or --jsonl");
    }
    const auto tok = load_tokenizer(*o);
    text::DecodeOptions options;
    options.skip_special_tokens = *skip_special;
    auto print = [&](const std::vector<text::TokenId>& list) {
      const std::string s = tok.decode(list, options);
      if (o->json_out) {
        std::printf("%s\n", dump(json{{"text", s}}).c_str());
      } else {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fputc('\n', stdout);
      }
    };
    if (ids_opt->count()) {
      print(parse_ids(*ids));
      return;
    }
    for_each_jsonl(o->jsonl, [&](const json& value, const std::string& where) {
      const auto it = value.is_object() ? value.find("ids") : value.end();
      if (it == value.end() || !it->is_array()) {
        throw InputError(where + ": expected an object with an \"ids\" array");
      }
      std::vector<text::TokenId> list;
      for (const auto& v : *it) {
        if (!v.is_number_integer()) throw InputError(where + ": \"ids\" must hold integers");
        list.push_back(v.get<text::TokenId>());
      }
      print(list);
    });
  });
}

}  // namespace glimpse::cli
