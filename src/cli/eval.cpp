// glimpse eval: accuracy and costs of a model (and a pipeline) on a data set (glimpse/eval).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/mpi_world.h"
#include "glimpse/core/error.h"
#include "glimpse/core/progress.h"
#include "glimpse/eval/dataset.h"
#include "glimpse/eval/evaluator.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"

namespace glimpse::cli {
namespace {

// "I/N" -> (I, N).
std::pair<std::int64_t, std::int64_t> parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  try {
    if (slash != std::string::npos) {
      std::size_t a = 0, b = 0;
      const std::int64_t i = std::stoll(s.substr(0, slash), &a);
      const std::int64_t n = std::stoll(s.substr(slash + 1), &b);
      if (a == slash && b == s.size() - slash - 1) return {i, n};
    }
  } catch (const std::exception&) {
  }
  throw InputError("--shard '" + s + "': expected I/N, e.g. 0/2");
}

void print_table(const nlohmann::json& t) {
  std::printf("%-12s %8s %10s\n", "type", "items", "accuracy");
  for (const auto& [type, c] : t.at("counts").items()) {
    const double n = c[1].get<double>();
    std::printf("%-12s %8lld %9.1f%%\n", type.c_str(), static_cast<long long>(n),
                n > 0 ? 100.0 * c[0].get<double>() / n : 0.0);
  }
  std::printf("%-12s %8lld %9.1f%%\n", "all",
              static_cast<long long>(t.at("items").get<std::int64_t>()),
              100.0 * t.at("accuracy").get<double>());
  std::printf("mean latency %.1f ms, prompt tokens %.1f, prefill %.3g FLOPs, KV %.0f bytes\n",
              t.at("mean_latency_ms").get<double>(), t.at("mean_prompt_tokens").get<double>(),
              t.at("mean_prefill_flops").get<double>(), t.at("mean_kv_bytes").get<double>());
}

}  // namespace

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string model, data, shard = "0/1", predictions;
    LoadArgs load;
    eval::EvalOptions options;
    std::int64_t limit = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Accuracy per question type and costs on a data set");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  cmd->add_option("--data", args->data, "Data set (JSON Lines)")->required();
  cmd->add_option("--pipeline", args->options.pipeline, "Test-time methods: JSON file or text");
  cmd->add_option("--max-new-tokens", args->options.max_new_tokens, "Tokens per answer at most");
  cmd->add_option("--shard", args->shard, "Run only shard I of N (every N-th item from I)");
  cmd->add_option("--limit", args->limit, "Only the first N items (before sharding)");
  cmd->add_option("--predictions", args->predictions, "Write one JSON line per item here");
  cmd->add_flag("--json", args->json, "Print the totals as one JSON line");
  add_load_options(*cmd, args->load);
  cmd->callback([args] {
    // Under mpirun every rank runs its shard and rank 0 prints the totals of all.
    const auto mpi = MpiWorld::from_environment();
    if (mpi && args->shard != "0/1")
      throw InputError("--shard: not with mpirun (each rank runs shard rank/size)");
    const auto [index, count] =
        mpi ? std::make_pair<std::int64_t, std::int64_t>(mpi->rank(), mpi->size())
            : parse_shard(args->shard);
    const std::string shard_name = std::to_string(index) + "/" + std::to_string(count);
    try {
      auto items = eval::read_dataset(args->data);
      if (args->limit < 0) throw InputError("--limit: expected >= 0");
      if (args->limit > 0 && static_cast<std::size_t>(args->limit) < items.size())
        items.resize(static_cast<std::size_t>(args->limit));
      items = eval::shard(items, index, count);
      const auto processor = model::Processor::load(args->model);
      auto model = model::load_model(args->model, load_options(args->load));
      eval::Evaluator evaluator(*model, *processor, args->options);
      eval::Totals totals;
      std::string lines;
      {
        core::Progress progress(mpi ? "eval (rank 0)" : "eval",
                                static_cast<std::int64_t>(items.size()));
        for (const auto& item : items) {
          const eval::ItemResult r = evaluator.run(item);
          totals.add(r);
          if (!args->predictions.empty()) {
            lines +=
                nlohmann::json{
                    {"id", r.id},         {"type", r.type},       {"prediction", r.prediction},
                    {"answer", r.answer}, {"correct", r.correct}, {"latency_ms", r.latency_ms}}
                    .dump() +
                "\n";
          }
          progress.advance();
        }
      }
      if (mpi) {
        // Predictions: one file per rank. Totals: the sums of every rank, added on rank 0.
        if (!args->predictions.empty())
          write_text_file(args->predictions + "." + std::to_string(index), lines);
        const auto all = mpi->gather(totals.sums().dump());
        if (mpi->rank() != 0) return;
        totals = eval::Totals();
        for (const auto& s : all) totals.merge(eval::Totals::from_sums(nlohmann::json::parse(s)));
      } else if (!args->predictions.empty()) {
        write_text_file(args->predictions, lines);
      }
      nlohmann::json out = totals.to_json();
      out["shard"] = mpi ? "mpi:" + std::to_string(count) : shard_name;
      if (args->json) {
        std::printf("%s\n", out.dump().c_str());
      } else {
        print_table(out);
      }
    } catch (const std::exception& e) {
      if (!mpi) throw;
      std::fprintf(stderr, "glimpse: error (rank %d): %s\n", mpi->rank(), e.what());
      mpi->abort(dynamic_cast<const InputError*>(&e) != nullptr ? 2 : 1);
    }
  });
}

}  // namespace glimpse::cli
