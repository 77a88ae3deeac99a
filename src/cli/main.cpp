// The `glimpse` command-line tool.
#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/core/system.h"
#include "glimpse/version.h"
#include "glimpse/video/decoder.h"

namespace {

// Exit codes stay below 128 so that shells never mistake an error for a signal.
constexpr int kExitGlimpseError = 2;
constexpr int kExitTorchError = 3;
constexpr int kExitOtherError = 4;

// The first line only: messages are one line, torch's may carry a backtrace.
std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"glimpse: multimodal LLMs and test-time methods on libtorch", "glimpse"};
  app.set_version_flag("--version", GLIMPSE_VERSION);
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "glimpse: error: " + first_line(e.what()) + " (see --help)\n";
  });
  std::string log_level;
  int threads = 0;
  app.add_option("--threads", threads, "Intra-op threads (0: one per core)")
      ->envname("GLIMPSE_THREADS")
      ->check(CLI::Range(0, 4096));
  app.add_option("--log-level", log_level, "error, warn, info, debug or trace")
      ->envname("GLIMPSE_LOG_LEVEL");
  bool malloc_default = false;
  app.add_flag("--malloc-default", malloc_default,
               "Keep glibc's default malloc settings (large blocks mapped and unmapped on free)")
      ->envname("GLIMPSE_MALLOC_DEFAULT");
  app.parse_complete_callback([&] {
    if (!log_level.empty()) {
      const auto level = glimpse::core::parse_log_level(log_level);
      if (!level) {
        throw CLI::ValidationError(
            "--log-level", "expected error, warn, info, debug or trace, found '" + log_level + "'");
      }
      glimpse::core::set_log_level(*level);
    }
    glimpse::core::configure_threads(threads);
    if (!malloc_default) glimpse::core::keep_freed_memory();
    glimpse::video::route_ffmpeg_log_to_glimpse();  // process-wide: the tool opts in
  });

  glimpse::cli::add_info_command(app);
  glimpse::cli::add_safetensors_command(app);
  glimpse::cli::add_forward_command(app);
  glimpse::cli::add_generate_command(app);
  glimpse::cli::add_run_command(app);
  glimpse::cli::add_preprocess_command(app);
  glimpse::cli::add_tokenize_command(app);
  glimpse::cli::add_detokenize_command(app);
  glimpse::cli::add_init_random_command(app);
  glimpse::cli::add_bench_command(app);
  glimpse::cli::add_inspect_command(app);
  glimpse::cli::add_train_demo_command(app);
  glimpse::cli::add_eval_command(app);
  glimpse::cli::add_world_command(app);
  glimpse::cli::add_visual_heads_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const glimpse::Error& e) {
    std::fprintf(stderr, "glimpse: error: %s\n", first_line(e.what()).c_str());
    return kExitGlimpseError;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "glimpse: torch error: %s\n",
                 first_line(e.what_without_backtrace()).c_str());
    return kExitTorchError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "glimpse: error: %s\n", first_line(e.what()).c_str());
    return kExitOtherError;
  }
  return 0;
}
