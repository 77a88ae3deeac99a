// glimpse run: the main job. A prompt with images or a video goes through the checkpoint's
// processor (chat template, image processor, placeholder expansion), the model generates with the
// pipeline's test-time methods attached, and the answer streams to stdout.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/generation_args.h"
#include "cli/request_args.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/logging.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/pipeline.h"
#include "glimpse/text/incremental_decoder.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::cli {

void add_run_command(CLI::App& app) {
  struct Args {
    std::string model, pipeline, report;
    LoadArgs load;
    RequestArgs request;
    GenerationArgs generation;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  args->generation.max_new_tokens = 128;
  auto* cmd = app.add_subcommand("run", "Answer a prompt about images or a video");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  add_request_options(*cmd, args->request);
  add_generation_options(*cmd, args->generation);
  add_load_options(*cmd, args->load);
  cmd->add_option("--pipeline", args->pipeline, "Test-time methods: a JSON file or JSON text");
  cmd->add_option("--report", args->report, "Write the run report (JSON) to this file");
  cmd->add_flag("--json", args->json,
                "Print one JSON line: answer, ids, timings, report (instead of streaming)");
  cmd->callback([args] {
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::time_point t0) {
      return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    };
    pipeline::Pipeline methods = args->pipeline.empty()
                                     ? pipeline::Pipeline()
                                     : pipeline::Pipeline::from_argument(args->pipeline);
    const model::LoadOptions load = load_options(args->load);
    auto config = generation_config(args->model, args->generation);
    if (!methods.empty()) config.hooks = &methods;

    auto t0 = Clock::now();
    const auto processor = model::Processor::load(args->model);
    auto model = model::load_model(args->model, load);
    const double load_ms = ms(t0);
    const bool random = model->config().has(bench::kRandomWeightsKey);
    if (random) {
      // Said on stderr so that stdout stays the answer.
      std::fprintf(stderr,
                   "note: %s holds random weights (glimpse init-random): the answer is noise; "
                   "point --model at a real checkpoint folder for real answers\n",
                   args->model.c_str());
    }

    t0 = Clock::now();
    const model::ProcessedInputs processed = processor->process(make_request(args->request));
    const double preprocess_ms = ms(t0);
    if (config.eos_token_ids.empty()) config.eos_token_ids = processor->eos_token_ids();

    text::DecodeOptions decode;
    decode.skip_special_tokens = true;
    text::IncrementalDecoder stream_decoder(processor->tokenizer(), decode);
    generate::StreamCallback stream;
    if (!args->json) {
      stream = [&](std::int64_t, const at::Tensor& tokens) {
        std::fputs(stream_decoder.push(tokens[0].item<std::int64_t>()).c_str(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    const auto result = generate::generate(*model, processed.inputs, config, stream);
    const at::Tensor ids_tensor = result.new_tokens[0].contiguous();
    const auto* p = ids_tensor.data_ptr<std::int64_t>();
    const std::vector<std::int64_t> ids(p, p + ids_tensor.numel());
    const std::string report = methods.report().to_json();
    if (!args->report.empty()) write_text_file(args->report, report + "\n");
    if (!args->json) {
      std::printf("%s\n", stream_decoder.flush().c_str());
      return;
    }
    const auto steps = static_cast<double>(ids.size());
    const nlohmann::json j = {
        {"answer", processor->tokenizer().decode(ids, decode)},
        {"ids", ids},
        {"prompt_tokens", result.prefill_tokens},
        {"random_weights", random},
        {"timings",
         {{"load_ms", load_ms},
          {"preprocess_ms", preprocess_ms},
          {"prefill_ms", result.prefill_ms},
          {"decode_ms", result.decode_ms},
          {"decode_tokens_per_s", steps > 1 ? (steps - 1) / (result.decode_ms / 1e3) : 0.0}}},
        {"report", nlohmann::json::parse(report)}};
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace glimpse::cli
