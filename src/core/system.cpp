#include "glimpse/core/system.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <torch/version.h>

#include <sched.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>

#include "glimpse/version.h"

namespace glimpse::core {
namespace {

// The loaded libblas.so.3 (Debian's alternatives pick the implementation), resolved.
std::string loaded_blas_path() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        const std::string_view name(info->dlpi_name ? info->dlpi_name : "");
        const auto slash = name.rfind('/');
        const auto base = name.substr(slash == std::string_view::npos ? 0 : slash + 1);
        if (base.substr(0, 10) == "libblas.so") {
          char resolved[PATH_MAX];
          const std::string n(name);
          *static_cast<std::string*>(data) = ::realpath(n.c_str(), resolved) ? resolved : n;
          return 1;
        }
        return 0;
      },
      &found);
  return found;
}

std::string describe_blas(const std::string& path, bool* is_reference) {
  *is_reference = false;
  using ConfigFn = char* (*)();
  std::string desc;
  if (auto fn = reinterpret_cast<ConfigFn>(::dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    desc = fn();
    if (auto core = reinterpret_cast<ConfigFn>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
      desc += std::string(" core=") + core();
    }
  }
  if (path.find("openblas") != std::string::npos) {
    const auto dir_end = path.rfind('/');
    const auto dir_begin = path.rfind('/', dir_end - 1);
    const std::string variant = path.substr(dir_begin + 1, dir_end - dir_begin - 1);
    return (desc.empty() ? "OpenBLAS" : desc) + " (" + variant + ")";
  }
  if (path.find("/blas/") != std::string::npos) {
    *is_reference = true;
    return "reference BLAS (slow; install libopenblas0-openmp)";
  }
  if (path.find("blis") != std::string::npos) return "BLIS";
  if (path.find("atlas") != std::string::npos) return "ATLAS";
  if (path.find("mkl") != std::string::npos) return "MKL";
  return path.empty() ? "none loaded" : "unknown";
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

// The kernel level ATen dispatches to, from its build summary ("CPU capability usage: AVX2").
std::string aten_cpu_capability() {
  const std::string config = at::show_config();
  const std::string key = "CPU capability usage: ";
  const auto pos = config.find(key);
  if (pos == std::string::npos) return "unknown";
  const auto end = config.find('\n', pos);
  return config.substr(pos + key.size(), end - pos - key.size());
}

}  // namespace

int configure_threads(int threads) {
  if (threads <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    threads = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
  }
  at::set_num_threads(threads);
  return at::get_num_threads();
}

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

std::string to_json(const SystemInfo& s) {
  const nlohmann::json j = {{"glimpse_version", s.glimpse_version},
                            {"torch_version", s.torch_version},
                            {"blas", s.blas},
                            {"blas_path", s.blas_path},
                            {"blas_is_reference", s.blas_is_reference},
                            {"torch_cpu_capability", s.torch_cpu_capability},
                            {"onednn", s.onednn},
                            {"threads", s.threads},
                            {"interop_threads", s.interop_threads},
                            {"cpu_model", s.cpu_model},
                            {"cpu_features", s.cpu_features},
                            {"avx512_bf16", s.has_avx512_bf16}};
  return j.dump();
}

SystemInfo system_info() {
  SystemInfo s;
  s.glimpse_version = version();
  s.torch_version = TORCH_VERSION;
  s.blas_path = loaded_blas_path();
  s.blas = describe_blas(s.blas_path, &s.blas_is_reference);
  s.torch_cpu_capability = aten_cpu_capability();
  s.onednn = at::hasMKLDNN();
  s.threads = at::get_num_threads();
  s.interop_threads = at::get_num_interop_threads();
  s.cpu_model = cpu_model_name();

  unsigned a = 0, b = 0, c = 0, d = 0;
  auto add = [&s](bool present, const char* name) {
    if (present) s.cpu_features.emplace_back(name);
  };
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    add(c & (1u << 12), "fma");
    add(c & (1u << 28), "avx");
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    add(b & (1u << 5), "avx2");
    add(b & (1u << 16), "avx512f");
    add(b & (1u << 17), "avx512dq");
    add(b & (1u << 30), "avx512bw");
    add(b & (1u << 31), "avx512vl");
    add(c & (1u << 11), "avx512_vnni");
    add(d & (1u << 22), "amx_bf16");
    add(d & (1u << 24), "amx_tile");
    add(d & (1u << 25), "amx_int8");
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    s.has_avx512_bf16 = (a & (1u << 5)) != 0;
    add(s.has_avx512_bf16, "avx512_bf16");
  }
  return s;
}

}  // namespace glimpse::core
