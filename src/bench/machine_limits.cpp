#include "glimpse/bench/machine_limits.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "kernels/ops.h"

namespace glimpse::bench {
namespace {

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

}  // namespace

std::vector<GemmResult> measure_gemm(const std::vector<GemmShape>& shapes, c10::ScalarType dtype,
                                     int repeat) {
  std::vector<GemmResult> out;
  const auto opts = at::TensorOptions().dtype(dtype);
  for (const auto& s : shapes) {
    const at::Tensor x = at::randn({s.m, s.k}, opts) * 0.1;
    const at::Tensor w = at::randn({s.n, s.k}, opts) * 0.1;
    at::Tensor y = at::linear(x, w);  // warm-up: first-call set-up and page faults
    double best = 1e300;
    for (int r = 0; r < std::max(1, repeat); ++r) {
      const double t0 = now_ms();
      y = at::linear(x, w);
      best = std::min(best, now_ms() - t0);
    }
    GemmResult g;
    g.shape = s;
    g.ms = best;
    g.gflops = s.flops() / (best * 1e-3) / 1e9;
    out.push_back(g);
  }
  return out;
}

GemmResult measure_gemv_kernel(const GemmShape& s, c10::ScalarType dtype, int repeat) {
  GemmResult g;
  g.shape = s;
  const auto opts = at::TensorOptions().dtype(dtype);
  const at::Tensor x = at::randn({1, s.k}, opts) * 0.1;
  const at::Tensor w = at::randn({s.n, s.k}, opts) * 0.1;
  if (!kernels::gemv_applies(x, w)) return g;
  at::Tensor y = kernels::gemv(x, {{&w, nullptr}})[0];
  double best = 1e300;
  for (int r = 0; r < std::max(1, repeat); ++r) {
    const double t0 = now_ms();
    y = kernels::gemv(x, {{&w, nullptr}})[0];
    best = std::min(best, now_ms() - t0);
  }
  g.ms = best;
  g.gflops = s.flops() / (best * 1e-3) / 1e9;
  return g;
}

double measure_copy_bandwidth(std::int64_t bytes, int repeat) {
  const std::int64_t n = std::max<std::int64_t>(bytes / 4, 1);
  const at::Tensor src = at::ones({n}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor dst = at::empty({n}, at::TensorOptions().dtype(at::kFloat));
  dst.copy_(src);  // fault the pages in before timing
  double best = 1e300;
  for (int r = 0; r < std::max(1, repeat); ++r) {
    const double t0 = now_ms();
    dst.copy_(src);
    best = std::min(best, now_ms() - t0);
  }
  return 2.0 * static_cast<double>(n) * 4.0 / (best * 1e-3) / 1e9;
}

}  // namespace glimpse::bench
