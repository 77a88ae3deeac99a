#pragma once

// What the machine and the linked libraries offer: versions, the BLAS that libtorch really calls,
// threads and CPU features. `glimpse info` prints it; benchmarks record it.

#include <string>
#include <vector>

namespace glimpse::core {

struct SystemInfo {
  std::string glimpse_version;
  std::string torch_version;
  std::string blas;                  // e.g. "OpenBLAS 0.3.21 (openblas-openmp) ..."
  std::string blas_path;             // the resolved libblas.so.3 that is loaded
  bool blas_is_reference = false;    // the slow reference BLAS: install libopenblas0-openmp
  std::string torch_cpu_capability;  // ATen's kernel level: DEFAULT, AVX2, AVX512
  bool onednn = false;
  int threads = 0;
  int interop_threads = 0;
  std::string cpu_model;
  std::vector<std::string> cpu_features;  // avx2, fma, avx512f, avx512_bf16, amx_bf16, ...
  bool has_avx512_bf16 = false;
};

SystemInfo system_info();

// Every field of `info` as one JSON object (`glimpse info --json`, the "system" of bench reports).
std::string to_json(const SystemInfo& info);

// Sets libtorch's intra-op threads; 0 means one per available core. Debian's libtorch starts with
// a single OpenMP thread on these machines (omp_get_max_threads() == 1), so the CLI calls this at
// start-up. Returns the count in effect.
int configure_threads(int threads = 0);

// Makes glibc's malloc keep freed memory for reuse (process-wide: no mmap for large blocks, no
// trimming). By default a block above 128 KB-32 MB is mapped fresh and unmapped on free, so each
// large activation of each layer is faulted in page by page again; on the development VM that
// made attention over 4096 vision patches 6x slower (docs/PERFORMANCE.md). The cost: the heap
// keeps its peak size. The CLI calls this at start-up (--malloc-default opts out); programs
// linking glimpse call it next to configure_threads().
void keep_freed_memory();

}  // namespace glimpse::core
