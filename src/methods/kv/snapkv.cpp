#include "methods/kv/snapkv.h"

#include <ATen/ATen.h>

namespace glimpse::methods::kv {

std::unique_ptr<pipeline::Method> SnapKV::create(const core::Config& params) {
  const WindowOptions options = parse_window_options(params, {});
  return std::make_unique<SnapKV>(KvBudget::parse(params, options.window), options);
}

std::vector<std::int64_t> SnapKV::head_counts(std::int64_t, std::int64_t, std::int64_t,
                                              std::int64_t base, const at::Tensor& pooled) {
  return std::vector<std::int64_t>(static_cast<std::size_t>(pooled.size(0)), base);
}

}  // namespace glimpse::methods::kv
