#include "text/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "glimpse/core/error.h"
#include "text/unicode.h"

namespace glimpse::text::detail {
namespace {

std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) {
  return (static_cast<std::uint64_t>(a) << 32) | b;
}

}  // namespace

Bpe::Bpe(std::unordered_map<std::string, std::uint32_t> vocab,
         const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
         const std::function<std::string(std::size_t)>& merge_where, const std::string& where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  vocab_r_.reserve(vocab_.size());
  for (const auto& [token, id] : vocab_) {
    vocab_r_[id] = token;
    max_id_plus_one_ = std::max<std::size_t>(max_id_plus_one_, std::size_t{id} + 1);
  }
  if (options_.unk_token) {
    // A missing unk token only fails when an unknown character needs it, as in tokenizers.
    const auto it = vocab_.find(*options_.unk_token);
    if (it != vocab_.end()) unk_id_ = it->second;
  }
  const std::size_t prefix_len = options_.continuing_subword_prefix.size();
  merges_.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    const auto ia = vocab_.find(a);
    if (ia == vocab_.end()) {
      throw FormatError(merge_where(i) + ": merge token '" + a + "' is not in the vocabulary");
    }
    const auto ib = vocab_.find(b);
    if (ib == vocab_.end()) {
      throw FormatError(merge_where(i) + ": merge token '" + b + "' is not in the vocabulary");
    }
    if (b.compare(0, prefix_len, options_.continuing_subword_prefix) != 0) {
      throw FormatError(merge_where(i) + ": merge token '" + b +
                        "' lacks the continuing_subword_prefix '" +
                        options_.continuing_subword_prefix + "'");
    }
    const std::string merged = a + b.substr(prefix_len);
    const auto im = vocab_.find(merged);
    if (im == vocab_.end()) {
      throw FormatError(merge_where(i) + ": merged token '" + merged +
                        "' is not in the vocabulary");
    }
    // A repeated pair takes the later rank, as tokenizers' HashMap collect does.
    merges_[pair_key(ia->second, ib->second)] = {static_cast<std::uint32_t>(i), im->second};
  }
}

std::unique_ptr<Bpe> Bpe::from_json(const JsonNode& model) {
  model.require_object();
  if (const auto dropout = model.find("dropout")) {
    if (!dropout->value().is_number()) dropout->fail("expected a number or null");
    if (dropout->value().get<double>() != 0.0) {
      dropout->fail_unsupported("BPE dropout is a training-time option that glimpse does not run");
    }
  }
  const JsonNode vocab_node = model.at("vocab");
  vocab_node.require_object();
  std::unordered_map<std::string, std::uint32_t> vocab;
  vocab.reserve(vocab_node.value().size());
  for (const auto& [token, id] : vocab_node.value().items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > INT32_MAX) {
      throw FormatError(vocab_node.where() + ": token '" + token +
                        "' needs an id in [0, 2^31), found " + id.dump());
    }
    vocab.emplace(token, static_cast<std::uint32_t>(id.get<std::int64_t>()));
  }
  const JsonNode merges_node = model.at("merges");
  merges_node.require_array();
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_node.size());
  for (std::size_t i = 0; i < merges_node.size(); ++i) {
    const JsonNode m = merges_node.at(i);
    if (m.is_string()) {
      // tokenizers/src/models/bpe/serialization.rs: exactly one space separates the two parts.
      const std::string s = m.as_string();
      const auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        m.fail("expected a merge \"left right\" with exactly one space, found '" + s + "'");
      }
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array()) {
      if (m.size() != 2 || !m.value()[0].is_string() || !m.value()[1].is_string()) {
        m.fail("expected a merge [left, right] of two strings");
      }
      merges.emplace_back(m.value()[0].get<std::string>(), m.value()[1].get<std::string>());
    } else {
      m.fail("expected a merge as \"left right\" or [left, right], found " + m.value().dump());
    }
  }
  BpeOptions options;
  options.unk_token = model.get_optional_string("unk_token");
  options.continuing_subword_prefix = model.get_string("continuing_subword_prefix", "");
  options.end_of_word_suffix = model.get_string("end_of_word_suffix", "");
  options.fuse_unk = model.get_bool("fuse_unk", false);
  options.byte_fallback = model.get_bool("byte_fallback", false);
  options.ignore_merges = model.get_bool("ignore_merges", false);
  const std::string file = model.file(), path = merges_node.path();
  return std::make_unique<Bpe>(
      std::move(vocab), merges, std::move(options),
      [&](std::size_t i) { return file + ": key '" + path + "[" + std::to_string(i) + "]'"; },
      model.where());
}

std::optional<std::uint32_t> Bpe::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(std::uint32_t id) const {
  const auto it = vocab_r_.find(id);
  return it == vocab_r_.end() ? nullptr : &it->second;
}

void Bpe::tokenize(std::string_view word, std::vector<std::uint32_t>& ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (const auto id = token_to_id(word)) {
      ids.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const std::size_t first = ids.size();
  merge_word(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity && !cache_.count(word)) {
      cache_keys_.emplace_back(word);
      cache_.emplace(cache_keys_.back(),
                     std::vector<std::uint32_t>(ids.begin() + first, ids.end()));
    }
  }
}

// tokenizers/src/models/bpe/model.rs: BPE::merge_word, then word.rs: Word::merge_all.
void Bpe::merge_word(std::string_view w, std::vector<std::uint32_t>& ids) const {
  struct Symbol {
    std::uint32_t id;
    std::int64_t prev, next;
    std::size_t len;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(w.size());
  auto add = [&](std::uint32_t id, std::size_t len) {
    const auto n = static_cast<std::int64_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, len});
  };

  // A pending unknown run: (id, byte length). Plain fields: GCC warns on an optional pair here.
  bool unk = false;
  std::uint32_t unk_id = 0;
  std::size_t unk_len = 0;
  std::string s;
  std::size_t i = 0;
  while (i < w.size()) {
    const std::size_t begin = i;
    i += utf8_len(static_cast<unsigned char>(w[i]));
    if (i > w.size()) i = w.size();
    const std::size_t byte_len = i - begin;
    s.clear();
    if (begin != 0) s += options_.continuing_subword_prefix;
    s.append(w.substr(begin, byte_len));
    if (i == w.size()) s += options_.end_of_word_suffix;

    const auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (unk) {
        add(unk_id, unk_len);
        unk = false;
      }
      add(it->second, byte_len);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<std::uint32_t> bytes;
      bytes.reserve(s.size());
      for (const char c : s) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(c));
        const auto b = vocab_.find(name);
        if (b == vocab_.end()) break;
        bytes.push_back(b->second);
      }
      if (bytes.size() == s.size()) {
        // As in tokenizers, a pending unk is not flushed before the byte tokens.
        for (const auto b : bytes) add(b, 1);
        continue;
      }
    }
    if (options_.unk_token) {
      if (!unk_id_) {
        throw InputError("BPE: unk_token '" + *options_.unk_token +
                         "' is needed for this text but is not in the vocabulary");
      }
      if (unk && options_.fuse_unk) {
        unk_len += byte_len;
      } else {
        if (unk) add(unk_id, unk_len);
        unk = true;
        unk_id = *unk_id_;
        unk_len = byte_len;
      }
    }
  }
  if (unk) add(unk_id, unk_len);

  struct Merge {
    std::uint32_t rank;
    std::size_t pos;
    std::uint32_t new_id;
  };
  // A min-heap on (rank, pos).
  auto later = [](const Merge& a, const Merge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Merge, std::vector<Merge>, decltype(later)> queue(later);
  auto find_merge = [&](std::uint32_t a, std::uint32_t b) {
    const auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (std::size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const auto* m = find_merge(symbols[k].id, symbols[k + 1].id)) {
      queue.push({m->first, k, m->second});
    }
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const auto next_pos = static_cast<std::size_t>(cur.next);
    const Symbol right = symbols[next_pos];
    const auto* m = find_merge(cur.id, right.id);
    if (!m || m->second != top.new_id) continue;  // a stale queue entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0)
      symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::int64_t>(top.pos);
    if (cur.prev >= 0) {
      const auto prev = static_cast<std::size_t>(cur.prev);
      if (const auto* pm = find_merge(symbols[prev].id, cur.id)) {
        queue.push({pm->first, prev, pm->second});
      }
    }
    if (cur.next >= 0) {
      if (const auto* nm = find_merge(cur.id, symbols[static_cast<std::size_t>(cur.next)].id)) {
        queue.push({nm->first, top.pos, nm->second});
      }
    }
  }
  for (const auto& sym : symbols) {
    if (sym.len != 0) ids.push_back(sym.id);
  }
}

}  // namespace glimpse::text::detail
