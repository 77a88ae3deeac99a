// glimpse run: the main job. A prompt with images or a video goes through the checkpoint's
// processor (chat template, image processor, placeholder expansion), the model generates with the
// pipeline's test-time methods attached, and the answer streams to stdout.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/generation_args.h"
#include "cli/request_args.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/pipeline.h"
#include "glimpse/text/incremental_decoder.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::cli {

void add_run_command(CLI::App& app) {
  struct Args {
    std::string model, pipeline, report, kv_dump;
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
  add_generation_options(*cmd, args->generation, /*candidates=*/true);
  add_load_options(*cmd, args->load);
  cmd->add_option("--pipeline", args->pipeline, "Test-time methods: a JSON file or JSON text");
  cmd->add_option("--report", args->report, "Write the run report (JSON) to this file");
  cmd->add_option("--kv-dump", args->kv_dump,
                  "Write the kept KV slots per layer after the run (kept.{layer}: [kv_heads, n] "
                  "int64) to this safetensors file");
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
    const std::int64_t candidates = config.num_return_sequences;

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
    const model::ProcessorRequest request = make_request(args->request);
    const model::ProcessedInputs processed = processor->process(request);
    const double preprocess_ms = ms(t0);
    if (config.eos_token_ids.empty()) config.eos_token_ids = processor->eos_token_ids();
    pipeline::Controller* controller = methods.controller();
    if (controller != nullptr && candidates > 1) {
      throw InputError(
          "--num-return-sequences: the pipeline's controller draws its own candidates");
    }

    text::DecodeOptions decode;
    decode.skip_special_tokens = true;
    text::IncrementalDecoder stream_decoder(processor->tokenizer(), decode);
    generate::GenerateOptions options;
    options.tokenizer = &processor->tokenizer();
    if (!args->json && candidates == 1 && controller == nullptr) {
      options.on_step = [&](const generate::StepInfo& step) {
        std::fputs(stream_decoder.push((*step.tokens)[0].item<std::int64_t>()).c_str(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    // One prefill; N candidates fork its KV prefix and decode in one batch.
    generate::Session session(*model, methods.empty() ? nullptr : &methods);
    // Bound without the session: it moves into the batch below.
    methods.bind(pipeline::MethodContext(*model, processor.get()));
    t0 = Clock::now();
    session.prefill(processed.inputs);
    const double prefill_ms = ms(t0);
    std::vector<nlohmann::json> answers;
    double decode_ms = 0;
    std::int64_t forwards = 0;  // decode forwards of the candidates' batch
    std::optional<generate::Session> batch;
    if (controller != nullptr) {
      pipeline::ControllerRequest round;
      round.session = &session;
      round.config = config;
      round.request = &request;
      round.processed = &processed;
      t0 = Clock::now();
      const pipeline::ControllerResult chosen = controller->run(round);
      decode_ms = ms(t0);
      answers.push_back({{"answer", chosen.answer}, {"ids", chosen.ids}});
      batch.emplace(std::move(session));
    } else {
      batch.emplace(candidates > 1 ? generate::Session::stack(session.fork(candidates))
                                   : std::move(session));
      t0 = Clock::now();
      const auto result = generate::Generator(*batch, config, options).run();
      decode_ms = ms(t0);
      // The first token comes from the prefill's logits: decode ran one forward less than steps.
      forwards = std::max<std::int64_t>(result.new_tokens.size(1) - 1, 0);
      for (std::int64_t i = 0; i < candidates; ++i) {
        const at::Tensor row = result.new_tokens[i].narrow(0, 0, result.lengths[i]).contiguous();
        const auto* p = row.data_ptr<std::int64_t>();
        const std::vector<std::int64_t> ids(p, p + row.numel());
        answers.push_back({{"answer", processor->tokenizer().decode(ids, decode)},
                           {"ids", ids},
                           {"mean_logprob", result.mean_logprob[i]}});
      }
    }
    pipeline::Report report = methods.report();
    const generate::SessionStats st = batch->stats();
    report.set_section("session", nlohmann::json{{"prefills", st.prefills},
                                                 {"appends", st.appends},
                                                 {"decode_steps", st.steps},
                                                 {"forks", st.forks},
                                                 {"sequences", candidates},
                                                 {"bytes_shared", st.bytes_shared},
                                                 {"bytes_per_fork", st.bytes_own / candidates},
                                                 {"bytes_held", st.bytes_shared + st.bytes_own},
                                                 {"bytes_logical", st.bytes_logical}}
                                      .dump());
    report.set_section("kv", batch->state().kv_report());
    if (!args->kv_dump.empty()) write_kv_dump(args->kv_dump, batch->state());
    const std::string report_json = report.to_json();
    if (!args->report.empty()) write_text_file(args->report, report_json + "\n");
    if (!args->json) {
      if (controller != nullptr) {
        std::printf("%s\n", answers[0]["answer"].get<std::string>().c_str());
      } else if (candidates == 1) {
        std::printf("%s\n", stream_decoder.flush().c_str());
      } else {
        for (std::int64_t i = 0; i < candidates; ++i) {
          std::printf("[%lld] %s\n", static_cast<long long>(i),
                      answers[i]["answer"].get<std::string>().c_str());
        }
      }
      return;
    }
    const double generated = static_cast<double>(forwards * candidates);
    nlohmann::json j = {
        {"answer", answers[0]["answer"]},
        {"ids", answers[0]["ids"]},
        {"prompt_tokens", processed.inputs.input_ids.numel()},
        {"random_weights", random},
        {"timings",
         {{"load_ms", load_ms},
          {"preprocess_ms", preprocess_ms},
          {"prefill_ms", prefill_ms},
          {"decode_ms", decode_ms},
          {"decode_tokens_per_s", decode_ms > 0 ? generated / (decode_ms / 1e3) : 0.0}}},
        {"report", nlohmann::json::parse(report_json)}};
    if (candidates > 1) j["candidates"] = answers;
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace glimpse::cli
