// glimpse world: samples of the synthetic shapes world as an eval data set (inline scenes), and
// optionally their pictures.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "glimpse/core/error.h"
#include "glimpse/demo/world.h"
#include "glimpse/eval/dataset.h"
#include "glimpse/vision/image_io.h"

namespace glimpse::cli {

void add_world_command(CLI::App& app) {
  struct Args {
    std::uint64_t seed = 1000003;  // the held-out split's seed (training uses 1)
    std::int64_t count = 500;
    std::string out, images;
    int size = 168;
  };
  auto args = std::make_shared<Args>();
  auto* cmd =
      app.add_subcommand("world", "Write samples of the synthetic shapes world (JSON Lines)");
  cmd->add_option("--seed", args->seed, "Stream seed (train-demo trains on 1)");
  cmd->add_option("--count", args->count, "Samples")->check(CLI::Range(1, 10000000));
  cmd->add_option("--size", args->size, "Picture side (multiple of 28)");
  cmd->add_option("--out", args->out, "Data set file (JSON Lines)")->required();
  cmd->add_option("--images", args->images, "Also write each picture as PNG into this folder");
  cmd->callback([args] {
    const demo::WorldOptions options = demo::world_options_for_size(args->size);
    if (!args->images.empty()) std::filesystem::create_directories(args->images);
    std::string lines;
    for (std::int64_t i = 0; i < args->count; ++i) {
      const demo::Sample s = demo::sample(args->seed, static_cast<std::uint64_t>(i), options);
      const std::string id = std::to_string(i);
      lines += eval::dataset_line(s, id) + "\n";
      if (!args->images.empty())
        vision::save_png(demo::render(s.scene), args->images + "/" + id + ".png");
    }
    write_text_file(args->out, lines);
    std::printf("%s: %lld samples of seed %llu\n", args->out.c_str(),
                static_cast<long long>(args->count), static_cast<unsigned long long>(args->seed));
  });
}

}  // namespace glimpse::cli
