// glimpse bench: vision, prefill and decode timings on synthetic inputs, against the machine's
// measured GEMM peak and memory bandwidth.
#include <ATen/Parallel.h>
#include <stdlib.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "glimpse/bench/benchmark.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/core/system.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::cli {
namespace {

// A folder under the temp dir, removed with everything in it when this dies.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "glimpse-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw Error("bench: cannot create a temporary folder");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// "WxH" -> (w, h).
std::pair<std::int64_t, std::int64_t> parse_size(const std::string& s) {
  const auto x = s.find('x');
  try {
    if (x != std::string::npos) {
      std::size_t a = 0, b = 0;
      const long long w = std::stoll(s.substr(0, x), &a), h = std::stoll(s.substr(x + 1), &b);
      if (a == x && b == s.size() - x - 1 && w > 0 && h > 0) return {w, h};
    }
  } catch (const std::exception&) {
  }
  throw InputError("--image-size: expected WIDTHxHEIGHT (e.g. 1280x720), found '" + s + "'");
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Args {
    std::string config, model, image_size, pipeline;
    LoadArgs load{"bf16"};
    std::int64_t visual_tokens = -1, text_tokens = 64, new_tokens = 16, candidates = 0;
    std::optional<int> threads;
    int repeat = 3, warmup = 1;
    std::uint64_t seed = 0;
    bool json = false, profile = false, no_limits = false, kv_decode = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "Time vision, prefill and decode on synthetic inputs");
  auto* source = cmd->add_option_group("source");
  source->add_option("--config", args->config,
                     "config.json: random weights (as init-random) in a temporary folder");
  source->add_option("--model", args->model, "Checkpoint folder");
  source->require_option(1);
  auto* visual = cmd->add_option("--visual-tokens", args->visual_tokens,
                                 "Merged visual tokens (Qwen: default 1024; 0: text only)");
  cmd->add_option("--image-size", args->image_size, "WxH image, resized as the processor would")
      ->excludes(visual);
  cmd->add_option("--text-tokens", args->text_tokens, "Text tokens around the image");
  cmd->add_option("--new-tokens", args->new_tokens, "Decode steps");
  cmd->add_option("--candidates", args->candidates,
                  "Also decode N forks of one prefill in one batch against one fork")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{64}));
  add_load_options(*cmd, args->load);
  cmd->add_option("--threads", args->threads, "Intra-op threads (0: one per core)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--repeat", args->repeat, "Timed runs (median reported)");
  cmd->add_option("--warmup", args->warmup, "Untimed runs first");
  cmd->add_option("--seed", args->seed, "Seed of the random weights (--config)");
  cmd->add_flag("--profile", args->profile, "Also time each op of one decoder layer");
  cmd->add_flag("--kv-decode", args->kv_decode,
                "KV methods of --pipeline at long contexts: one prefill, then decode and decode "
                "attention timed on a dense and a compressed fork of it");
  cmd->add_flag("--no-machine-limits", args->no_limits, "Skip the GEMM and bandwidth measurements");
  cmd->add_option("--pipeline", args->pipeline,
                  "Test-time methods (a JSON file or JSON text): each run is timed without and "
                  "with them, in the same process");
  cmd->add_flag("--json", args->json, "Print one JSON object as the last line");
  cmd->callback([args] {
    // Parsed first: a bad spec fails before minutes of random weights.
    std::optional<pipeline::Pipeline> methods;
    if (!args->pipeline.empty()) methods = pipeline::Pipeline::from_argument(args->pipeline);
    if (args->threads) core::configure_threads(*args->threads);
    const model::LoadOptions load = load_options(args->load);
    bench::BenchOptions options;
    options.visual_tokens = args->visual_tokens;
    if (!args->image_size.empty()) {
      std::tie(options.image_width, options.image_height) = parse_size(args->image_size);
    }
    options.text_tokens = args->text_tokens;
    options.new_tokens = args->new_tokens;
    options.candidates = args->candidates;
    options.repeat = args->repeat;
    options.warmup = args->warmup;
    options.profile = args->profile;
    options.kv_decode = args->kv_decode;
    options.machine_limits = !args->no_limits;
    if (methods) options.pipeline = &*methods;

    using Clock = std::chrono::steady_clock;
    std::optional<ScratchDir> scratch;
    std::string dir = args->model;
    double init_ms = 0;
    if (!args->config.empty()) {
      const auto config = core::Config::load(args->config);
      scratch.emplace();
      bench::RandomCheckpointOptions ro;
      ro.seed = args->seed;
      ro.dtype = load.dtype;               // stored as computed: no conversion at load
      ro.max_shard_bytes = 1'000'000'000;  // bounds the memory used while generating
      const auto t0 = Clock::now();
      bench::write_random_checkpoint(config, scratch->path(), ro);
      init_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      dir = scratch->path();
    }
    const auto t0 = Clock::now();
    auto model = model::load_model(dir, load);
    const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    bench::BenchResult result = bench::run_benchmark(*model, options);
    result.init_ms = init_ms;
    result.load_ms = load_ms;
    result.weights = args->load.weights;
    std::fputs(bench::to_text(result).c_str(), stdout);
    if (args->json) std::printf("%s\n", bench::to_json(result).c_str());
  });
}

}  // namespace glimpse::cli
