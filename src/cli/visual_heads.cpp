// glimpse visual-heads: SparseMM's visual-head scores of a checkpoint, for the sparsemm method.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "glimpse/methods/kv/visual_heads.h"
#include "glimpse/model/processor.h"

namespace glimpse::cli {

void add_visual_heads_command(CLI::App& app) {
  struct Args {
    std::string model, out;
    LoadArgs load{"bf16"};
    methods::kv::VisualHeadOptions options;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "visual-heads",
      "Score each attention head's visual grounding on synthetic text pictures (SparseMM's "
      "offline scoring) and write the score file the sparsemm method loads");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  cmd->add_option("--out", args->out, "Score file to write ({\"layer-head\": [per-sample]})")
      ->required();
  cmd->add_option("--samples", args->options.samples, "Synthetic pictures");
  cmd->add_option("--max-new-tokens", args->options.max_new_tokens, "Greedy tokens per picture");
  cmd->add_option("--seed", args->options.seed, "Seed of the pictures");
  add_load_options(*cmd, args->load);
  cmd->callback([args] {
    const auto processor = model::Processor::load(args->model);
    auto model = model::load_model(args->model, load_options(args->load));
    write_text_file(args->out,
                    methods::kv::score_visual_heads(*model, *processor, args->options) + "\n");
  });
}

}  // namespace glimpse::cli
