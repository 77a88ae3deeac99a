#pragma once

// Subcommands of the `glimpse` tool. Each add_* function adds one subcommand to the app and gives
// it a callback that runs it; errors propagate to main, which prints them as one line.

namespace CLI {
class App;
}

namespace glimpse::cli {

void add_info_command(CLI::App& app);
void add_safetensors_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_preprocess_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_detokenize_command(CLI::App& app);
void add_init_random_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_train_demo_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_world_command(CLI::App& app);
void add_visual_heads_command(CLI::App& app);

}  // namespace glimpse::cli
