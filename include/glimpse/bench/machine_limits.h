#pragma once

// What the machine can do at most, measured in the same process as a benchmark so that results
// can be read as ratios: GEMM throughput at given shapes (the model's own) and memory bandwidth.

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse::bench {

// [m, k] x [k, n] as at::linear runs it (weight stored [n, k], as in the model).
struct GemmShape {
  std::string name;
  std::int64_t m = 0, k = 0, n = 0;
  double flops() const {
    return 2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
  }
};

struct GemmResult {
  GemmShape shape;
  double ms = 0;      // best of the repeats
  double gflops = 0;  // flops / best time
};

// Times each shape in `dtype` after one warm-up call; best of `repeat`.
std::vector<GemmResult> measure_gemm(const std::vector<GemmShape>& shapes, c10::ScalarType dtype,
                                     int repeat = 3);

// The GEMV kernel decode uses for one row (kernels::gemv) at `shape` (m = 1); ms = 0 when it
// does not apply on this CPU or dtype.
GemmResult measure_gemv_kernel(const GemmShape& shape, c10::ScalarType dtype, int repeat = 5);

// A stream-like copy of `bytes` (read) into another buffer (write); returns GB/s counting read
// plus write bytes (1 GB = 1e9 B), best of `repeat`. `bytes` should dwarf the caches.
double measure_copy_bandwidth(std::int64_t bytes = std::int64_t{512} << 20, int repeat = 5);

}  // namespace glimpse::bench
