// glimpse info: versions, BLAS, threads and CPU features.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "glimpse/core/system.h"

namespace glimpse::cli {

void add_info_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("info", "Print versions, the BLAS in use, threads and CPU features");
  auto json_out = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json_out, "Print one JSON object");
  cmd->callback([json_out] {
    const auto s = core::system_info();
    if (*json_out) {
      std::printf("%s\n", core::to_json(s).c_str());
      return;
    }
    std::string features;
    for (const auto& f : s.cpu_features) features += (features.empty() ? "" : " ") + f;
    std::printf("glimpse        %s\n", s.glimpse_version.c_str());
    std::printf("torch          %s (CPU kernels: %s, oneDNN: %s)\n", s.torch_version.c_str(),
                s.torch_cpu_capability.c_str(), s.onednn ? "yes" : "no");
    std::printf("blas           %s\n", s.blas.c_str());
    std::printf("blas library   %s\n", s.blas_path.empty() ? "-" : s.blas_path.c_str());
    std::printf("threads        %d intra-op, %d inter-op\n", s.threads, s.interop_threads);
    std::printf("cpu            %s\n", s.cpu_model.c_str());
    std::printf("cpu features   %s\n", features.empty() ? "-" : features.c_str());
    std::printf("bf16 matmuls   %s\n", s.has_avx512_bf16
                                           ? "native (AVX512-BF16 through oneDNN)"
                                           : "emulated (no AVX512-BF16: prefer --dtype f32)");
    if (s.blas_is_reference) {
      std::fprintf(stderr,
                   "glimpse: warning: libtorch is using the reference BLAS; fp32 matmuls will be "
                   "about 15x slower. Install libopenblas0-openmp.\n");
    }
  });
}

}  // namespace glimpse::cli
