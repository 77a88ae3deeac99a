#include "layers/media_cut.h"

#include "glimpse/core/error.h"
#include "layers/decoder.h"

namespace glimpse::layers {

at::Tensor kept_rows(const at::Tensor& embeds, const at::Tensor& keep, std::int64_t total,
                     const std::string& what) {
  const at::Tensor k = model::checked_keep(keep, total, what);
  if (embeds.dim() == 2 && embeds.size(0) == k.numel()) return embeds;
  if (embeds.dim() == 2 && embeds.size(0) == total) return embeds.index_select(0, k);
  throw InputError(what + ": expected the features of all " + std::to_string(total) +
                   " tokens or of the " + std::to_string(k.numel()) + " kept ones, found " +
                   c10::str(embeds.sizes()));
}

at::Tensor concat_keeps(const std::vector<at::Tensor>& keeps,
                        const std::vector<std::int64_t>& tokens) {
  bool any = false;
  for (const auto& k : keeps) any = any || k.defined();
  if (!any) return at::Tensor();
  std::vector<at::Tensor> parts;
  std::int64_t offset = 0;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  for (std::size_t j = 0; j < tokens.size(); ++j) {
    const bool has = j < keeps.size() && keeps[j].defined();
    parts.push_back(has ? keeps[j].to(at::kLong) + offset
                        : at::arange(offset, offset + tokens[j], i64));
    offset += tokens[j];
  }
  return at::cat(parts);
}

void drop_media_rows(const at::Tensor& input_ids, std::int64_t token, const at::Tensor& keep,
                     PromptCut& cut) {
  if (!keep.defined()) return;
  const at::Tensor slots = input_ids.eq(token).reshape({-1}).nonzero().view({-1});
  const at::Tensor k = model::checked_keep(keep, slots.numel(), "vision keep");
  at::Tensor dropped = at::ones({slots.numel()}, at::TensorOptions().dtype(at::kBool));
  dropped.index_fill_(0, k, false);
  if (!cut.drop.defined()) cut.drop = at::zeros(input_ids.sizes(), dropped.options());
  cut.drop.view({-1}).index_put_({slots.masked_select(dropped)}, true);
}

at::Tensor scatter_mask(const at::Tensor& input_ids, std::int64_t token, const PromptCut& cut) {
  const at::Tensor mask = input_ids.eq(token);
  return cut.any() ? mask.logical_and(cut.drop.logical_not()) : mask;
}

at::Tensor apply_cut(const PromptCut& cut, at::Tensor& x, at::Tensor& attention_mask,
                     model::TokenLayout& layout) {
  const std::int64_t b = x.size(0);
  const at::Tensor kept = cut.drop.logical_not();
  const at::Tensor counts = kept.sum(1);
  const std::int64_t most = counts.max().item<std::int64_t>();
  // Kept indices per sequence, left-padded with -1 to the longest (BlockPre's keep).
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  at::Tensor keep = at::full({b, most}, -1, i64);
  for (std::int64_t r = 0; r < b; ++r) {
    const at::Tensor idx = kept[r].nonzero().view({-1});
    keep[r].narrow(0, most - idx.numel(), idx.numel()).copy_(idx);
  }
  if (b == 1) keep = keep[0];
  const at::Tensor real = attention_mask;
  x = model::select_tokens(x, keep);
  attention_mask = model::select_tokens(attention_mask, keep);
  if (keep.dim() == 2) attention_mask = attention_mask.masked_fill(keep.lt(0), 0);
  layout = layout.select(keep);
  if (cut.positions == model::PositionPolicy::Compact) {
    return compact_positions(keep, real, layout);
  }
  // Real tokens removed per sequence.
  return (real.to(at::kLong) * cut.drop).sum(1);
}

}  // namespace glimpse::layers
