// glimpse init-random: a checkpoint folder with deterministic random weights from a config.json.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/config.h"

namespace glimpse::cli {

void add_init_random_command(CLI::App& app) {
  struct Args {
    std::string config, out, dtype = "f32";
    std::uint64_t seed = 0;
    std::int64_t max_shard_bytes = 4'000'000'000;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "init-random", "Write a checkpoint folder with deterministic random weights for a config");
  cmd->add_option("--config", args->config, "config.json of the architecture")->required();
  cmd->add_option("--out", args->out, "Output folder (created)")->required();
  cmd->add_option("--seed", args->seed, "Seed of the weights");
  cmd->add_option("--dtype", args->dtype, "Stored dtype: f32 or bf16");
  cmd->add_option("--max-shard-bytes", args->max_shard_bytes,
                  "Shard the weights above this size (default 4e9)")
      ->check(CLI::PositiveNumber);
  cmd->callback([args] {
    bench::RandomCheckpointOptions options;
    options.seed = args->seed;
    options.dtype = parse_dtype(args->dtype);
    options.max_shard_bytes = args->max_shard_bytes;
    const auto config = core::Config::load(args->config);
    const auto info = bench::write_random_checkpoint(config, args->out, options);
    std::printf(
        "%s: %s, %lld tensors, %lld parameters, %.1f MB in %zu file(s), random weights "
        "(seed %llu)\n",
        args->out.c_str(), bench::family_name(info.family).c_str(),
        static_cast<long long>(info.tensors), static_cast<long long>(info.parameters),
        info.bytes / 1e6, info.files.size(), static_cast<unsigned long long>(options.seed));
  });
}

}  // namespace glimpse::cli
