// glimpse forward: one forward pass over reference-named inputs, written as safetensors with the
// reference's output names (logits, hidden_states.{i}, attentions.{i}).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "glimpse/core/tensor.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::cli {

void add_forward_command(CLI::App& app) {
  struct Args {
    std::string model, inputs, out, pipeline, report, kv_dump;
    LoadArgs load;
    bool hidden = false, attentions = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("forward", "Run one forward pass and save its outputs");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  cmd->add_option("--inputs", args->inputs, "safetensors with input_ids, pixel_values, ...")
      ->required();
  cmd->add_option("--out", args->out, "Output safetensors file")->required();
  cmd->add_flag("--output-hidden-states", args->hidden, "Save hidden_states.{0..L}");
  cmd->add_flag("--output-attentions", args->attentions, "Save attentions.{i} [B, H, S, S]");
  add_load_options(*cmd, args->load);
  cmd->add_option("--pipeline", args->pipeline, "Test-time methods: a JSON file or JSON text");
  cmd->add_option("--report", args->report, "Write the run report (JSON) to this file");
  cmd->add_option("--kv-dump", args->kv_dump,
                  "Run as a cached prefill and write the kept KV slots per layer (kept.{layer}: "
                  "[kv_heads, n] int64) to this safetensors file");
  cmd->callback([args] {
    pipeline::Pipeline methods = args->pipeline.empty()
                                     ? pipeline::Pipeline()
                                     : pipeline::Pipeline::from_argument(args->pipeline);
    const model::LoadOptions load = load_options(args->load);
    const model::ForwardInputs inputs = model::read_forward_inputs(args->inputs);
    auto model = model::load_model(args->model, load);
    methods.bind(pipeline::MethodContext(*model));
    model::ForwardOptions options;
    options.output_hidden_states = args->hidden;
    options.output_attentions = args->attentions;
    if (!methods.empty()) options.hooks = &methods;
    // With --kv-dump the pass fills a cache (the prefill), so that KV methods act on it.
    model::DecodeState state;
    if (!args->kv_dump.empty())
      state = model->new_state(inputs.input_ids.defined() ? inputs.input_ids.size(0) : 1);
    const auto out = args->kv_dump.empty() ? model->forward(inputs, options)
                                           : model->forward_cached(inputs, options, state);
    // Outputs are saved in fp32 whatever the compute dtype, so that they compare directly.
    std::vector<std::pair<std::string, at::Tensor>> tensors{{"logits", out.logits.to(at::kFloat)}};
    for (std::size_t i = 0; i < out.hidden_states.size(); ++i) {
      tensors.emplace_back("hidden_states." + std::to_string(i),
                           out.hidden_states[i].to(at::kFloat));
    }
    if (out.last_layer_output_prenorm.defined()) {
      tensors.emplace_back("last_layer_output_prenorm",
                           out.last_layer_output_prenorm.to(at::kFloat));
    }
    for (std::size_t i = 0; i < out.attentions.size(); ++i) {
      tensors.emplace_back("attentions." + std::to_string(i), out.attentions[i].to(at::kFloat));
    }
    core::save_tensors(args->out, tensors);
    if (!args->kv_dump.empty()) write_kv_dump(args->kv_dump, state);
    if (!args->report.empty()) {
      pipeline::Report report = methods.report();
      if (!args->kv_dump.empty()) report.set_section("kv", state.kv_report());
      write_text_file(args->report, report.to_json() + "\n");
    }
  });
}

}  // namespace glimpse::cli
