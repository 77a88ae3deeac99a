// glimpse generate: greedy (or sampled) generation from reference-named inputs.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/generation_args.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::cli {
namespace {

nlohmann::json rows(const at::Tensor& t) {
  nlohmann::json out = nlohmann::json::array();
  const at::Tensor c = t.to(at::kLong).contiguous();
  for (std::int64_t i = 0; i < c.size(0); ++i) {
    const auto* p = c[i].data_ptr<std::int64_t>();
    out.push_back(std::vector<std::int64_t>(p, p + c.size(1)));
  }
  return out;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  struct Args {
    std::string model, inputs, pipeline, report, kv_dump;
    LoadArgs load;
    GenerationArgs generation;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("generate", "Generate tokens from reference-named inputs");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  cmd->add_option("--inputs", args->inputs, "safetensors with input_ids, pixel_values, ...")
      ->required();
  add_load_options(*cmd, args->load);
  add_generation_options(*cmd, args->generation);
  cmd->add_option("--pipeline", args->pipeline, "Test-time methods: a JSON file or JSON text");
  cmd->add_option("--report", args->report, "Write the run report (JSON) to this file");
  cmd->add_option("--kv-dump", args->kv_dump,
                  "Write the kept KV slots per layer after generating (kept.{layer}: [kv_heads, "
                  "n] int64) to this safetensors file");
  cmd->add_flag("--json", args->json,
                "End with one JSON line {\"sequences\": [[...]], \"new_tokens\": [[...]]}");
  cmd->callback([args] {
    pipeline::Pipeline methods = args->pipeline.empty()
                                     ? pipeline::Pipeline()
                                     : pipeline::Pipeline::from_argument(args->pipeline);
    const model::LoadOptions load = load_options(args->load);
    const model::ForwardInputs inputs = model::read_forward_inputs(args->inputs);
    auto model = model::load_model(args->model, load);
    methods.bind(pipeline::MethodContext(*model));
    auto config = generation_config(args->model, args->generation);
    generate::GenerateOptions options;
    if (!methods.empty()) options.hooks = &methods;
    if (!args->json) {
      options.on_step = [](const generate::StepInfo& step) {
        const at::Tensor t = step.tokens->contiguous();
        for (std::int64_t i = 0; i < t.size(0); ++i) {
          std::printf("%s%lld", i ? " " : "", static_cast<long long>(t[i].item<std::int64_t>()));
        }
        std::printf("\n");
        std::fflush(stdout);
        return true;
      };
    }
    generate::GenerationResult result;
    if (args->kv_dump.empty()) {
      result = generate::generate(*model, inputs, config, options);
    } else {
      // generate() with the session kept, to read its cache afterwards.
      config.validate();
      generate::Session session(*model, options.hooks);
      session.prefill(inputs);
      result = generate::Generator(session, config, options).run();
      write_kv_dump(args->kv_dump, session.state());
    }
    if (args->json) {
      const nlohmann::json j = {{"sequences", rows(result.sequences)},
                                {"new_tokens", rows(result.new_tokens)},
                                {"report", nlohmann::json::parse(methods.report().to_json())}};
      std::printf("%s\n", j.dump().c_str());
    }
    if (!args->report.empty()) write_text_file(args->report, methods.report().to_json() + "\n");
  });
}

}  // namespace glimpse::cli
