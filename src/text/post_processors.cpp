#include "text/post_processors.h"

#include <map>
#include <utility>

namespace glimpse::text::detail {
namespace {

struct SpecialEntry {
  std::vector<std::int64_t> ids;
  std::vector<std::string> tokens;
};

// One item of a template: a special token (by name) or the input sequence.
struct TemplateItem {
  bool is_sequence = false;
  bool is_b = false;
  std::string special;
};

// tokenizers/src/processors/template.rs: TemplateProcessing (the "single" template).
class TemplateProcessing : public PostProcessor {
 public:
  TemplateProcessing(std::vector<TemplateItem> single, std::map<std::string, SpecialEntry> special)
      : single_(std::move(single)), special_(std::move(special)) {}
  void process(std::vector<std::int64_t>& ids, std::vector<std::string>& tokens) const override {
    std::vector<std::int64_t> out_ids;
    std::vector<std::string> out_tokens;
    for (const auto& item : single_) {
      if (item.is_sequence) {
        out_ids.insert(out_ids.end(), ids.begin(), ids.end());
        out_tokens.insert(out_tokens.end(), tokens.begin(), tokens.end());
      } else {
        const auto& e = special_.at(item.special);
        out_ids.insert(out_ids.end(), e.ids.begin(), e.ids.end());
        out_tokens.insert(out_tokens.end(), e.tokens.begin(), e.tokens.end());
      }
    }
    ids = std::move(out_ids);
    tokens = std::move(out_tokens);
  }

 private:
  std::vector<TemplateItem> single_;
  std::map<std::string, SpecialEntry> special_;
};

// RobertaProcessing and BertProcessing: cls + A + sep for one sequence.
class ClsSep : public PostProcessor {
 public:
  ClsSep(std::string cls, std::int64_t cls_id, std::string sep, std::int64_t sep_id)
      : cls_(std::move(cls)), sep_(std::move(sep)), cls_id_(cls_id), sep_id_(sep_id) {}
  void process(std::vector<std::int64_t>& ids, std::vector<std::string>& tokens) const override {
    ids.insert(ids.begin(), cls_id_);
    tokens.insert(tokens.begin(), cls_);
    ids.push_back(sep_id_);
    tokens.push_back(sep_);
  }

 private:
  std::string cls_, sep_;
  std::int64_t cls_id_, sep_id_;
};

class NoOp : public PostProcessor {
 public:
  void process(std::vector<std::int64_t>&, std::vector<std::string>&) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void process(std::vector<std::int64_t>& ids, std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->process(ids, tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

std::int64_t token_id(const JsonNode& node) {
  const std::int64_t id = node.as_int();
  if (id < 0 || id > INT32_MAX) node.fail("expected a token id in [0, 2^31)");
  return id;
}

// "$A", "$B:1", "$0", "[CLS]", "[SEP]:1" (tokenizers' Piece::try_from(String)).
TemplateItem parse_template_string(const JsonNode& node, const std::string& s) {
  TemplateItem item;
  std::string base = s;
  if (const auto colon = s.rfind(':'); colon != std::string::npos && colon + 1 < s.size()) {
    const std::string type_id = s.substr(colon + 1);
    if (type_id.find_first_not_of("0123456789") == std::string::npos) base = s.substr(0, colon);
  }
  if (!base.empty() && base[0] == '$') {
    const std::string rest = base.substr(1);
    item.is_sequence = true;
    if (rest == "B" || rest == "b") {
      item.is_b = true;
    } else if (!(rest.empty() || rest == "A" || rest == "a" ||
                 rest.find_first_not_of("0123456789") == std::string::npos)) {
      node.fail("unknown sequence '" + s + "' in template (expected $A, $B or $<type id>)");
    }
    return item;
  }
  item.special = base;
  return item;
}

std::vector<TemplateItem> parse_template(const JsonNode& node) {
  std::vector<TemplateItem> items;
  if (node.is_string()) {
    // A string template: items separated by spaces.
    const std::string s = node.as_string();
    std::size_t pos = 0;
    while (pos < s.size()) {
      const auto end = s.find(' ', pos);
      const std::string part = s.substr(pos, end == std::string::npos ? end : end - pos);
      if (!part.empty()) items.push_back(parse_template_string(node, part));
      if (end == std::string::npos) break;
      pos = end + 1;
    }
    return items;
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    const JsonNode item = node.at(i);
    if (item.is_string()) {
      items.push_back(parse_template_string(item, item.as_string()));
      continue;
    }
    item.require_object();
    TemplateItem t;
    if (const auto seq = item.find("Sequence")) {
      t.is_sequence = true;
      const std::string id = seq->get_string("id");
      if (id != "A" && id != "B") seq->at("id").fail("expected A or B, found '" + id + "'");
      t.is_b = id == "B";
    } else if (const auto special = item.find("SpecialToken")) {
      t.special = special->get_string("id");
    } else {
      item.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
    items.push_back(std::move(t));
  }
  return items;
}

std::unique_ptr<PostProcessor> make_template(const JsonNode& node) {
  std::map<std::string, SpecialEntry> special;
  if (const auto tokens = node.find("special_tokens")) {
    tokens->require_object();
    for (const auto& [name, value] : tokens->value().items()) {
      const JsonNode entry = tokens->at(name);
      SpecialEntry e;
      const JsonNode ids = entry.at("ids");
      const JsonNode toks = entry.at("tokens");
      for (std::size_t i = 0; i < ids.size(); ++i) e.ids.push_back(token_id(ids.at(i)));
      for (std::size_t i = 0; i < toks.size(); ++i) e.tokens.push_back(toks.at(i).as_string());
      if (e.ids.size() != e.tokens.size()) {
        entry.fail("'ids' and 'tokens' differ in length");
      }
      special.emplace(name, std::move(e));
    }
  }
  const JsonNode single_node = node.at("single");
  auto single = parse_template(single_node);
  for (const auto& item : single) {
    if (item.is_b) single_node.fail("the single-sequence template may only use $A");
    if (!item.is_sequence && !special.count(item.special)) {
      single_node.fail("special token '" + item.special + "' is missing from special_tokens");
    }
  }
  if (const auto pair = node.find("pair")) {
    for (const auto& item : parse_template(*pair)) {
      if (!item.is_sequence && !special.count(item.special)) {
        pair->fail("special token '" + item.special + "' is missing from special_tokens");
      }
    }
  }
  return std::make_unique<TemplateProcessing>(std::move(single), std::move(special));
}

std::pair<std::string, std::int64_t> token_pair(const JsonNode& node) {
  if (!node.is_array() || node.size() != 2) node.fail("expected [token, id]");
  return {node.at(std::size_t{0}).as_string(), token_id(node.at(std::size_t{1}))};
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const JsonNode& node) {
  node.require_object();
  const std::string type = node.get_string("type");
  if (type == "TemplateProcessing") return make_template(node);
  if (type == "ByteLevel") return std::make_unique<NoOp>();  // only trims offsets
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto [cls, cls_id] = token_pair(node.at("cls"));
    const auto [sep, sep_id] = token_pair(node.at("sep"));
    return std::make_unique<ClsSep>(cls, cls_id, sep, sep_id);
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("processors");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) parts.push_back(make_post_processor(list.at(i)));
    return std::make_unique<SequenceProcessor>(std::move(parts));
  }
  node.at("type").fail_unsupported(
      "unsupported post-processor type '" + type +
      "' (glimpse supports TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, "
      "Sequence)");
}

}  // namespace glimpse::text::detail
