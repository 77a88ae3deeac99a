#include "layers/probe.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "glimpse/core/error.h"

namespace glimpse::layers {
namespace {

at::Tensor index_tensor(const std::vector<std::int64_t>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong));
}

// Query heads `heads` with their key heads: (q [B, h, R, D], k [B, h, T, D]) when a subset is
// asked for; all heads keep the grouped layout (q [B, Hkv, rep*R, D], k [B, Hkv, T, D]).
struct HeadScores {
  const at::Tensor& keys;
  std::vector<std::int64_t> heads;  // empty: all
  std::int64_t hq = 0;

  at::Tensor operator()(const at::Tensor& q) const {  // [B, Hq, r, D] -> [B, h, r, T]
    const std::int64_t b = q.size(0), r = q.size(2), d = q.size(3);
    const std::int64_t hkv = keys.size(1), rep = hq / hkv;
    const double root = std::sqrt(static_cast<double>(d));
    if (heads.empty()) {
      const at::Tensor qg = q.reshape({b, hkv, rep * r, d});
      return (at::matmul(qg, keys.transpose(2, 3)) / root).view({b, hq, r, keys.size(2)});
    }
    std::vector<std::int64_t> kv(heads.size());
    for (std::size_t i = 0; i < heads.size(); ++i) kv[i] = heads[i] / rep;
    const at::Tensor qs = q.index_select(1, index_tensor(heads));
    const at::Tensor ks = keys.index_select(1, index_tensor(kv));
    return at::matmul(qs, ks.transpose(2, 3)) / root;
  }
};

void check_heads(const std::vector<std::int64_t>& heads, std::int64_t hq, const char* what) {
  for (std::size_t i = 0; i < heads.size(); ++i) {
    if (heads[i] < 0 || heads[i] >= hq || (i > 0 && heads[i] <= heads[i - 1])) {
      throw InputError(std::string(what) + ": heads must be increasing indices in [0, " +
                       std::to_string(hq) + "), found " + std::to_string(heads[i]));
    }
  }
}

at::Tensor reduce(const at::Tensor& x, std::int64_t dim, model::ProbeReduce how) {
  switch (how) {
    case model::ProbeReduce::None:
      return x;
    case model::ProbeReduce::Sum:
      return x.sum(dim, /*keepdim=*/true);
    case model::ProbeReduce::Mean:
      return x.mean(dim, /*keepdim=*/true);
  }
  return x;
}

}  // namespace

at::Tensor attention_probe(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& mask,
                           const std::vector<std::int64_t>& heads,
                           const model::ProbeRequest& request) {
  const std::int64_t b = q.size(0), hq = q.size(1), r = q.size(2), t = keys.size(2);
  check_heads(heads, hq, "attention probe");
  const HeadScores scores_of{keys, heads, hq};
  // A mask per query head (a ragged cache's holes) follows the heads asked for.
  const at::Tensor m = mask.defined() && mask.size(1) > 1 && !heads.empty()
                           ? mask.index_select(1, index_tensor(heads))
                           : mask;
  const std::int64_t h = heads.empty() ? hq : static_cast<std::int64_t>(heads.size());
  constexpr std::int64_t kBlockScores = std::int64_t{1} << 22;
  const std::int64_t block =
      std::max<std::int64_t>(1, kBlockScores / std::max<std::int64_t>(1, b * h * t));
  std::vector<at::Tensor> parts;
  at::Tensor acc;  // rows reduced: the running sum [B, h', 1, T]
  for (std::int64_t r0 = 0; r0 < r; r0 += block) {
    const std::int64_t n = std::min(block, r - r0);
    at::Tensor s = scores_of(q.narrow(2, r0, n));
    if (m.defined()) s = s + m.narrow(2, r0, n);
    s = request.value == model::ProbeValue::Probs ? at::softmax(s, -1, at::kFloat)
                                                  : s.to(at::kFloat);
    s = reduce(s, 1, request.over_heads);
    if (request.over_rows == model::ProbeReduce::None) {
      parts.push_back(std::move(s));
    } else {
      s = s.sum(2, /*keepdim=*/true);
      acc = acc.defined() ? acc.add_(s) : s;
    }
  }
  if (request.over_rows == model::ProbeReduce::None)
    return parts.size() == 1 ? parts[0] : at::cat(parts, 2);
  if (request.over_rows == model::ProbeReduce::Mean) acc.div_(static_cast<double>(r));
  return acc;
}

void apply_attention_edits(at::Tensor& out, const at::Tensor& q, const at::Tensor& keys,
                           const at::Tensor& values, const at::Tensor& mask,
                           const std::vector<model::AttentionEdit>& edits, const char* site) {
  using Op = model::AttentionEdit::Op;
  const std::int64_t b = q.size(0), hq = q.size(1), s = q.size(2), d = q.size(3);
  const std::int64_t t = keys.size(2), hkv = keys.size(1), rep = hq / hkv;
  // Resolve every edit's heads and rows; the score edits share one eager recomputation over the
  // union of their heads and rows.
  struct Resolved {
    const model::AttentionEdit* edit;
    std::vector<std::int64_t> heads, rows;
  };
  std::vector<Resolved> all;
  std::vector<bool> head_used(static_cast<std::size_t>(hq)), row_used(static_cast<std::size_t>(s));
  bool any_scores = false;
  for (const auto& e : edits) {
    Resolved r{&e, e.heads, e.rows.resolve(s, site)};
    check_heads(r.heads, hq, site);
    if (r.heads.empty()) {
      for (std::int64_t i = 0; i < hq; ++i) r.heads.push_back(i);
    }
    if (e.keys.defined() && (e.keys.dim() != 2 || e.keys.size(0) != b || e.keys.size(1) != t)) {
      throw InputError(std::string(site) + ": an edit's keys must be [" + std::to_string(b) + ", " +
                       std::to_string(t) + "] booleans");
    }
    if (e.op != Op::ScaleOutput) {
      any_scores = true;
      for (const auto h : r.heads) head_used[static_cast<std::size_t>(h)] = true;
      for (const auto row : r.rows) row_used[static_cast<std::size_t>(row)] = true;
    }
    all.push_back(std::move(r));
  }
  at::Tensor out4 = out.view({b, s, hq, d});
  if (any_scores) {
    std::vector<std::int64_t> uh, ur;
    for (std::int64_t i = 0; i < hq; ++i)
      if (head_used[static_cast<std::size_t>(i)]) uh.push_back(i);
    for (std::int64_t i = 0; i < s; ++i)
      if (row_used[static_cast<std::size_t>(i)]) ur.push_back(i);
    std::vector<std::int64_t> kv(uh.size()), head_pos(static_cast<std::size_t>(hq), -1),
        row_pos(static_cast<std::size_t>(s), -1);
    for (std::size_t i = 0; i < uh.size(); ++i) {
      kv[i] = uh[i] / rep;
      head_pos[static_cast<std::size_t>(uh[i])] = static_cast<std::int64_t>(i);
    }
    for (std::size_t i = 0; i < ur.size(); ++i)
      row_pos[static_cast<std::size_t>(ur[i])] = static_cast<std::int64_t>(i);
    const at::Tensor hi = index_tensor(uh), ri = index_tensor(ur), kvi = index_tensor(kv);
    const at::Tensor qs = q.index_select(1, hi).index_select(2, ri);
    const at::Tensor ks = keys.index_select(1, kvi), vs = values.index_select(1, kvi);
    // [B, h, r, T] in fp32 so that every op below is exact in one precision.
    at::Tensor scores =
        (at::matmul(qs, ks.transpose(2, 3)) / std::sqrt(static_cast<double>(d))).to(at::kFloat);
    const at::Tensor m = mask.defined() ? mask.index_select(2, ri).to(at::kFloat) : at::Tensor();
    // A [B, h, r, T] selector of one edit's heads, rows and keys within the union.
    auto where = [&](const Resolved& r) {
      std::vector<std::int64_t> hp, rp;
      for (const auto h : r.heads) hp.push_back(head_pos[static_cast<std::size_t>(h)]);
      for (const auto row : r.rows) rp.push_back(row_pos[static_cast<std::size_t>(row)]);
      at::Tensor sel = at::zeros(
          {1, static_cast<std::int64_t>(uh.size()), static_cast<std::int64_t>(ur.size()), 1},
          at::TensorOptions().dtype(at::kBool));
      sel.index_fill_(1, index_tensor(hp), true);
      at::Tensor rows_sel = at::zeros({1, 1, static_cast<std::int64_t>(ur.size()), 1},
                                      at::TensorOptions().dtype(at::kBool));
      rows_sel.index_fill_(2, index_tensor(rp), true);
      sel = sel.logical_and(rows_sel);
      if (r.edit->keys.defined())
        sel = sel.logical_and(r.edit->keys.to(at::kBool).view({b, 1, 1, t}));
      return sel;
    };
    for (const auto& r : all) {
      if (r.edit->op == Op::ScaleScores)
        scores = at::where(where(r), scores * r.edit->value, scores);
      else if (r.edit->op == Op::AddScores)
        scores = at::where(where(r), scores + r.edit->value, scores);
    }
    if (m.defined()) scores = scores + m;
    for (const auto& r : all) {
      if (r.edit->op == Op::SetScores)
        scores = at::where(where(r), at::full_like(scores, r.edit->value), scores);
    }
    const at::Tensor probs = at::softmax(scores, -1).to(vs.scalar_type());
    const at::Tensor rows_out = at::matmul(probs, vs);  // [B, h, r, D]
    // Write back only the (head, row) pairs some score edit names; the others keep the fast
    // path's values.
    at::Tensor pairs =
        at::zeros({static_cast<std::int64_t>(ur.size()), static_cast<std::int64_t>(uh.size())},
                  at::TensorOptions().dtype(at::kBool));
    auto pa = pairs.accessor<bool, 2>();
    for (const auto& r : all) {
      if (r.edit->op == Op::ScaleOutput) continue;
      for (const auto h : r.heads) {
        for (const auto row : r.rows)
          pa[row_pos[static_cast<std::size_t>(row)]][head_pos[static_cast<std::size_t>(h)]] = true;
      }
    }
    at::Tensor block = out4.index_select(1, ri);  // [B, r, Hq, D]
    const at::Tensor fresh = rows_out.permute({0, 2, 1, 3});
    block.index_copy_(2, hi,
                      at::where(pairs.view({1, pairs.size(0), pairs.size(1), 1}), fresh,
                                block.index_select(2, hi)));
    out4.index_copy_(1, ri, block);
  }
  for (const auto& r : all) {
    if (r.edit->op != Op::ScaleOutput) continue;
    at::Tensor factor = at::ones({hq}, at::TensorOptions().dtype(at::kFloat));
    factor.index_fill_(0, index_tensor(r.heads), r.edit->value);
    const at::Tensor ri = index_tensor(r.rows);
    out4.index_copy_(
        1, ri, (out4.index_select(1, ri) * factor.view({1, 1, hq, 1})).to(out4.scalar_type()));
  }
}

}  // namespace glimpse::layers
