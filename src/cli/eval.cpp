// glimpse eval: accuracy and costs of a model (and a pipeline) on a data set (glimpse/eval).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/mpi_world.h"
#include "glimpse/core/error.h"
#include "glimpse/core/progress.h"
#include "glimpse/eval/dataset.h"
#include "glimpse/eval/evaluator.h"
#include "glimpse/eval/plot.h"
#include "glimpse/eval/sweep.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/vision/image_io.h"

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

struct Args {
  std::string model, data, shard = "0/1", predictions, sweep, plot, sweep_x = "flops";
  LoadArgs load;
  eval::EvalOptions options;
  std::int64_t limit = 0;
  bool json = false;
};

// A pipeline argument as JSON text: the file's content when it names a file.
std::string pipeline_text(const std::string& argument) {
  if (argument.empty() || !std::filesystem::is_regular_file(argument)) return argument;
  std::ifstream in(argument);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One setting over this process's items: totals, and the prediction lines.
eval::Totals run_setting(model::Model& model, const model::Processor& processor,
                         const std::vector<eval::Item>& items, const Args& args,
                         const std::string& pipeline, const std::string& label,
                         std::string* lines) {
  eval::EvalOptions options = args.options;
  options.pipeline = pipeline;
  eval::Evaluator evaluator(model, processor, options);
  eval::Totals totals;
  core::Progress progress(label, static_cast<std::int64_t>(items.size()));
  for (const auto& item : items) {
    const eval::ItemResult r = evaluator.run(item);
    totals.add(r);
    if (lines != nullptr) {
      *lines +=
          nlohmann::json{{"id", r.id},         {"type", r.type},       {"prediction", r.prediction},
                         {"answer", r.answer}, {"correct", r.correct}, {"latency_ms", r.latency_ms}}
              .dump() +
          "\n";
    }
    progress.advance();
  }
  return totals;
}

// Every rank's totals of each setting added on rank 0 (the rank's own elsewhere).
std::vector<eval::Totals> combine(const MpiWorld* mpi, std::vector<eval::Totals> totals) {
  if (mpi == nullptr) return totals;
  nlohmann::json mine = nlohmann::json::array();
  for (const auto& t : totals) mine.push_back(t.sums());
  const auto all = mpi->gather(mine.dump());
  if (mpi->rank() != 0) return totals;
  std::vector<eval::Totals> out(totals.size());
  for (const auto& s : all) {
    const auto j = nlohmann::json::parse(s);
    for (std::size_t i = 0; i < out.size(); ++i) out[i].merge(eval::Totals::from_sums(j.at(i)));
  }
  return out;
}

void run_eval(const Args& a, const MpiWorld* mpi) {
  const auto [index, count] =
      mpi ? std::make_pair<std::int64_t, std::int64_t>(mpi->rank(), mpi->size())
          : parse_shard(a.shard);
  const std::string shard_name =
      mpi ? "mpi:" + std::to_string(count) : std::to_string(index) + "/" + std::to_string(count);
  if (a.sweep_x != "flops" && a.sweep_x != "kv")
    throw InputError("--sweep-x '" + a.sweep_x + "': expected flops or kv");
  if (!a.plot.empty() && a.sweep.empty()) throw InputError("--plot: needs --sweep");
  auto items = eval::read_dataset(a.data);
  if (a.limit < 0) throw InputError("--limit: expected >= 0");
  if (a.limit > 0 && static_cast<std::size_t>(a.limit) < items.size())
    items.resize(static_cast<std::size_t>(a.limit));
  items = eval::shard(items, index, count);
  const auto processor = model::Processor::load(a.model);
  auto model = model::load_model(a.model, load_options(a.load));
  const bool print = mpi == nullptr || mpi->rank() == 0;

  if (a.sweep.empty()) {
    std::string lines;
    auto totals =
        combine(mpi, {run_setting(*model, *processor, items, a, a.options.pipeline,
                                  mpi ? "eval (rank " + std::to_string(index) + ")" : "eval",
                                  a.predictions.empty() ? nullptr : &lines)});
    if (!a.predictions.empty())
      write_text_file(mpi ? a.predictions + "." + std::to_string(index) : a.predictions, lines);
    if (!print) return;
    nlohmann::json out = totals[0].to_json();
    out["shard"] = shard_name;
    if (a.json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      print_table(out);
    }
    return;
  }

  // The plain model first (the baseline of the relative costs), then every value.
  const eval::Sweep sweep = eval::parse_sweep(a.sweep);
  const std::string base = pipeline_text(a.options.pipeline);
  std::vector<eval::Totals> totals;
  totals.push_back(run_setting(*model, *processor, items, a, "", "eval plain", nullptr));
  for (const auto& v : sweep.values) {
    totals.push_back(run_setting(*model, *processor, items, a, eval::sweep_pipeline(base, sweep, v),
                                 "eval " + sweep.key + "=" + v.dump(), nullptr));
  }
  totals = combine(mpi, std::move(totals));
  if (!print) return;
  const nlohmann::json plain = totals[0].to_json();
  const char* cost = a.sweep_x == "kv" ? "mean_kv_bytes" : "mean_prefill_flops";
  const double base_cost = std::max(1e-30, plain.at(cost).get<double>());
  nlohmann::json points = nlohmann::json::array();
  std::vector<eval::PlotPoint> plot = {{1.0, plain.at("accuracy").get<double>(), "plain"}};
  for (std::size_t i = 0; i < sweep.values.size(); ++i) {
    nlohmann::json t = totals[i + 1].to_json();
    const double rel = t.at(cost).get<double>() / base_cost;
    t["value"] = sweep.values[i];
    t["relative_cost"] = rel;
    points.push_back(t);
    const std::string label =
        sweep.values[i].is_string() ? sweep.values[i].get<std::string>() : sweep.values[i].dump();
    plot.push_back({rel, t.at("accuracy").get<double>(), label});
  }
  if (!a.plot.empty()) {
    eval::PlotOptions o;
    o.title =
        sweep.method + " " + sweep.key + " on " + std::filesystem::path(a.data).filename().string();
    if (a.sweep_x == "kv") o.x_label = "KV bytes held (relative to the plain model)";
    vision::save_png(eval::plot_tradeoff(plot, o), a.plot);
  }
  nlohmann::json out = {{"sweep", sweep.method + "." + sweep.key},
                        {"cost", cost},
                        {"plain", plain},
                        {"points", points},
                        {"shard", shard_name}};
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("%-10s %10s %14s\n", sweep.key.c_str(), "accuracy", "relative cost");
  std::printf("%-10s %9.1f%% %14.3f\n", "plain", 100 * plain.at("accuracy").get<double>(), 1.0);
  for (const auto& p : points) {
    std::printf("%-10s %9.1f%% %14.3f\n", p.at("value").dump().c_str(),
                100 * p.at("accuracy").get<double>(), p.at("relative_cost").get<double>());
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Accuracy per question type and costs on a data set");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  cmd->add_option("--data", args->data, "Data set (JSON Lines)")->required();
  cmd->add_option("--pipeline", args->options.pipeline, "Test-time methods: JSON file or text");
  cmd->add_option("--max-new-tokens", args->options.max_new_tokens, "Tokens per answer at most");
  cmd->add_option("--shard", args->shard, "Run only shard I of N (every N-th item from I)");
  cmd->add_option("--limit", args->limit, "Only the first N items (before sharding)");
  cmd->add_option("--predictions", args->predictions, "Write one JSON line per item here");
  cmd->add_option(
      "--sweep", args->sweep,
      "Evaluate the plain model, then each value of TYPE.KEY=v1,v2,... in the pipeline");
  cmd->add_option("--sweep-x", args->sweep_x, "Cost of a sweep: flops (prefill) or kv (bytes)");
  cmd->add_option("--plot", args->plot, "Write the sweep's accuracy against cost as a PNG");
  cmd->add_flag("--json", args->json, "Print the totals as one JSON line");
  add_load_options(*cmd, args->load);
  cmd->callback([args] {
    // Under mpirun every rank runs its shard and rank 0 prints the totals of all.
    const auto mpi = MpiWorld::from_environment();
    if (mpi && args->shard != "0/1")
      throw InputError("--shard: not with mpirun (each rank runs shard rank/size)");
    try {
      run_eval(*args, mpi.get());
    } catch (const std::exception& e) {
      if (!mpi) throw;
      // One rank's error must not leave the others waiting in a gather.
      std::fprintf(stderr, "glimpse: error (rank %d): %s\n", mpi->rank(), e.what());
      mpi->abort(dynamic_cast<const InputError*>(&e) != nullptr ? 2 : 1);
    }
  });
}

}  // namespace glimpse::cli
