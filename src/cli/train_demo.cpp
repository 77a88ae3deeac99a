// glimpse train-demo: trains the demo model on the synthetic world (glimpse/demo/train.h).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "glimpse/demo/train.h"

namespace glimpse::cli {

void add_train_demo_command(CLI::App& app) {
  auto o = std::make_shared<demo::TrainOptions>();
  o->config = "examples/configs/shapes-qwen2-vl.json";
  o->out_dir = "examples/models/shapes";
  o->state_dir = ".train-state/shapes";
  auto every = std::make_shared<std::int64_t>(10);
  auto* cmd = app.add_subcommand(
      "train-demo",
      "Train the demo model (Qwen2-VL architecture) on the synthetic shapes world; resumable");
  cmd->add_option("--config", o->config, "config.json of the architecture (new runs)");
  cmd->add_option("--out", o->out_dir, "Checkpoint folder written (bf16 weights)");
  cmd->add_option("--state", o->state_dir, "Resumable state (optimizer, fp32 weights, step)");
  cmd->add_option("--steps", o->steps, "Length of the learning-rate schedule");
  cmd->add_option("--stop-step", o->stop_step, "Stop once this many steps are done");
  cmd->add_option("--minutes", o->max_minutes, "Stop after this many minutes (0: no limit)");
  cmd->add_option("--checkpoint-minutes", o->checkpoint_minutes, "Save the state this often");
  cmd->add_option("--batch", o->batch, "Samples per step");
  cmd->add_option("--lr", o->learning_rate, "Peak learning rate");
  cmd->add_option("--warmup", o->warmup, "Warmup steps");
  cmd->add_option("--aux-weight", o->aux_weight, "Weight of the per-cell colour/shape loss");
  cmd->add_option("--aux-input-weight", o->aux_input_weight,
                  "Weight of the per-cell loss at the decoder's input (0: off)");
  cmd->add_option("--aux-position", o->aux_position,
                  "Cells also predict their half of the picture and a sign's word (true/false)");
  cmd->add_option("--vision-own-loss", o->vision_own_loss,
                  "The vision tower learns from the input-level cell loss alone (true/false)");
  cmd->add_option("--image-size", o->image_size, "Picture side in pixels (multiple of 28)");
  cmd->add_option("--data-seed", o->data_seed, "Seed of the training stream");
  cmd->add_option("--init-seed", o->init_seed, "Seed of the initial weights");
  cmd->add_option("--log-every", *every, "Print a line every N steps")->check(CLI::PositiveNumber);
  cmd->callback([o, every] {
    double loss = 0, answer = 0, aux = 0, acc = 0, colour = 0, shape = 0, secs = 0;
    std::int64_t n = 0;
    const auto result = demo::train_demo(
        *o,
        [&](const demo::StepReport& r) {
          loss += r.loss;
          answer += r.answer_loss;
          aux += r.aux_loss;
          acc += r.answer_accuracy;
          colour += r.cell_colour_accuracy;
          shape += r.cell_shape_accuracy;
          secs += r.seconds;
          if (++n == *every || r.step == r.steps) {
            std::printf(
                "step %lld/%lld  loss %.4f (answer %.4f, cells %.4f)  answer tokens %.1f%%  "
                "cells: colour %.1f%% shape %.1f%%  lr %.2e  %.2f s/step\n",
                static_cast<long long>(r.step), static_cast<long long>(r.steps), loss / n,
                answer / n, aux / n, 100 * acc / n, 100 * colour / n, 100 * shape / n,
                r.learning_rate, secs / n);
            std::fflush(stdout);
            loss = answer = aux = acc = colour = shape = secs = 0;
            n = 0;
          }
        },
        [](const std::string& m) {
          std::printf("%s\n", m.c_str());
          std::fflush(stdout);
        });
    std::printf("trained steps %lld..%lld in %.0f s; weights in %s, state in %s\n",
                static_cast<long long>(result.start_step), static_cast<long long>(result.end_step),
                result.seconds, o->out_dir.c_str(), o->state_dir.c_str());
  });
}

}  // namespace glimpse::cli
