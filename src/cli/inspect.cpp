// glimpse inspect --model DIR (--image PATH... | --video PATH | --frames PATH...) --prompt TEXT
//                 [--layers L,..] [--heads H,..] [--query last|token:I|span:A-B|generated]
//                 [--logit-lens POS] [--save-hidden] --out DIR
// Attention of the chosen query tokens onto every image and video frame, on the merged-patch grid:
// heatmap PNGs over the original pictures, the numbers (safetensors or JSON) and index.json; a
// logit lens at one position and the hidden states of the chosen layers.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/request_args.h"
#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/generate/generator.h"
#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/methods/inspect/heatmap.h"
#include "glimpse/methods/inspect/logit_lens.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::cli {
namespace {

namespace fs = std::filesystem;
namespace insp = methods::inspect;
using nlohmann::json;

struct InspectArgs {
  std::string model, out;
  LoadArgs load;
  RequestArgs request;
  std::vector<std::int64_t> layers, heads;
  std::string query = "last", numbers = "safetensors", png = "all";
  std::int64_t max_new_tokens = 16;
  double alpha = 0.5;
  bool smooth = false, save_hidden = false;
  std::optional<std::string> logit_lens;
  std::int64_t top_k = 5;
};

// Nested lists of a float tensor (any rank) for JSON output.
json to_json(const at::Tensor& t) {
  if (t.dim() == 0) return t.item<double>();
  json out = json::array();
  for (std::int64_t i = 0; i < t.size(0); ++i) out.push_back(to_json(t[i]));
  return out;
}

std::vector<std::int64_t> ids_of(const at::Tensor& ids) {
  const at::Tensor c = ids.to(at::kLong).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

// Query heads of the language model from config.json, when it says (0: unknown, left to the
// method's check at the first layer).
std::int64_t config_heads(const core::Config& c) {
  if (c.has("text_config.num_attention_heads")) return c.get_int("text_config.num_attention_heads");
  if (c.has("num_attention_heads")) return c.get_int("num_attention_heads");
  return 0;
}

void check_args(const InspectArgs& a) {
  if (!fs::is_directory(a.model)) throw InputError("'" + a.model + "': no such model folder");
  if (a.request.images.empty() && a.request.video.empty() && a.request.frames.empty()) {
    throw InputError("inspect: give --image, --video or --frames");
  }
  if (a.numbers != "safetensors" && a.numbers != "json") {
    throw InputError("--numbers: expected safetensors or json, found '" + a.numbers + "'");
  }
  if (a.png != "all" && a.png != "mean" && a.png != "none") {
    throw InputError("--png: expected all, mean or none, found '" + a.png + "'");
  }
  if (!(a.alpha >= 0 && a.alpha <= 1)) throw InputError("--alpha: expected a value in [0, 1]");
  for (const auto l : a.layers) {
    if (l < 0)
      throw InputError("--layers: expected layer indices >= 0, found " + std::to_string(l));
  }
  for (const auto h : a.heads) {
    if (h < 0) throw InputError("--heads: expected head indices >= 0, found " + std::to_string(h));
  }
  if (a.top_k <= 0) throw InputError("--top-k: must be positive");
}

void run_inspect(const InspectArgs& a) {
  check_args(a);
  const insp::QuerySelector query = insp::QuerySelector::parse(a.query, "--query");
  const model::LoadOptions load = load_options(a.load);
  auto processor = model::Processor::load(a.model);
  auto model = model::load_model(a.model, load);
  for (const auto l : a.layers) {
    if (l >= model->num_layers()) {
      throw InputError("--layers: layer " + std::to_string(l) + " out of range (the model has " +
                       std::to_string(model->num_layers()) + " layers: 0.." +
                       std::to_string(model->num_layers() - 1) + ")");
    }
  }
  if (const std::int64_t heads = config_heads(model->config()); heads > 0) {
    for (const auto h : a.heads) {
      if (h >= heads) {
        throw InputError("--heads: head " + std::to_string(h) + " out of range (the model has " +
                         std::to_string(heads) + " heads: 0.." + std::to_string(heads - 1) + ")");
      }
    }
  }

  // The request, and the pictures the heatmaps are drawn on (a video comes as its frames).
  const model::ProcessorRequest request = make_request(a.request);
  const std::vector<vision::Image> frames =
      request.videos.empty() ? std::vector<vision::Image>{} : request.videos[0].frames;
  const model::ProcessedInputs processed = processor->process(request);
  const std::int64_t prompt_length = processed.inputs.input_ids.size(1);
  if (query.prefill() && query.last >= prompt_length) {
    throw InputError("--query: " + query.to_string() + " is outside the prompt of " +
                     std::to_string(prompt_length) + " tokens (0.." +
                     std::to_string(prompt_length - 1) + ")");
  }
  std::int64_t lens_position = -1;
  if (a.logit_lens) {
    if (*a.logit_lens == "last") {
      lens_position = prompt_length - 1;
    } else {
      try {
        std::size_t used = 0;
        lens_position = std::stoll(*a.logit_lens, &used);
        if (used != a.logit_lens->size()) lens_position = -1;
      } catch (const std::exception&) {
        lens_position = -1;
      }
      if (lens_position < 0 || lens_position >= prompt_length) {
        throw InputError("--logit-lens: expected last or a prompt position in 0.." +
                         std::to_string(prompt_length - 1) + ", found '" + *a.logit_lens + "'");
      }
    }
  }

  insp::AttentionMapOptions options;
  options.layers = a.layers;
  options.heads = a.heads;
  options.query = query;
  auto owned = std::make_unique<insp::AttentionMap>(options);
  insp::AttentionMap& attention = *owned;
  pipeline::Pipeline methods;
  methods.add(std::move(owned));
  methods.bind(pipeline::MethodContext(*model, &*processor));
  const bool need_hidden = a.logit_lens.has_value() || a.save_hidden;
  model::ForwardOptions forward_options;
  forward_options.last_logits_only = true;
  forward_options.output_hidden_states = need_hidden;
  std::optional<model::ForwardOutput> forward;
  at::Tensor sequence = processed.inputs.input_ids;
  json generated;
  if (query.prefill()) {
    forward_options.hooks = &methods;
    forward = model->forward(processed.inputs, forward_options);
  } else {
    auto config = generate::GenerationConfig::from_checkpoint(a.model);
    config.max_new_tokens = a.max_new_tokens;
    config.do_sample = false;
    if (config.eos_token_ids.empty()) config.eos_token_ids = processor->eos_token_ids();
    generate::GenerateOptions options;
    options.hooks = &methods;
    const auto result = generate::generate(*model, processed.inputs, config, options);
    sequence = result.sequences;
    const auto ids = ids_of(result.new_tokens[0]);
    generated = {{"ids", ids}, {"text", processor->tokenizer().decode(ids)}};
    if (need_hidden) forward = model->forward(processed.inputs, forward_options);
  }
  const std::vector<insp::MediaMap> maps = attention.maps();

  fs::create_directories(a.out);
  const fs::path out(a.out);
  // Numbers.
  std::string numbers_file;
  if (a.numbers == "safetensors") {
    numbers_file = "maps.safetensors";
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& m : maps) {
      tensors.emplace_back(m.name(), m.maps);
      tensors.emplace_back(m.name() + ".head_mean", m.head_mean().contiguous());
    }
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    tensors.emplace_back("layers", at::tensor(attention.layers(), i64));
    tensors.emplace_back("heads", at::tensor(attention.heads(), i64));
    tensors.emplace_back("query_indices", at::tensor(attention.query_indices(), i64));
    core::save_tensors((out / numbers_file).string(), tensors,
                       {{"producer", "glimpse inspect"}, {"query", query.to_string()}});
  } else {
    numbers_file = "maps.json";
    json j = json::object();
    for (const auto& m : maps) {
      j[m.name()] = {{"maps", to_json(m.maps)}, {"head_mean", to_json(m.head_mean())}};
    }
    write_text_file((out / numbers_file).string(), j.dump() + "\n");
  }

  // Heatmaps.
  insp::HeatmapFiles files;
  files.per_head = a.png == "all";
  files.heatmap.alpha = a.alpha;
  if (a.smooth) files.heatmap.interpolation = insp::Interpolation::Bilinear;
  json media = json::array();
  std::size_t png_count = 0;
  for (const auto& m : maps) {
    const bool is_video = m.modality == model::Modality::Video;
    std::vector<vision::Image> pictures;
    json frames_used = json::array();
    if (is_video) {
      // A temporal grid step covers consecutive frames; draw it on the first of them.
      const auto n = static_cast<std::int64_t>(frames.size());
      const std::int64_t per_step = (n + m.t - 1) / m.t;
      for (std::int64_t t = 0; t < m.t; ++t) {
        const std::int64_t f = std::min(t * per_step, n - 1);
        pictures.push_back(frames[static_cast<std::size_t>(f)]);
        frames_used.push_back(f);
      }
    } else {
      pictures.push_back(request.images.at(static_cast<std::size_t>(m.index)));
    }
    const insp::GridPlacement placement =
        processor->grid_placement(pictures[0].width, pictures[0].height);
    std::vector<std::string> written;
    if (a.png != "none") {
      written = insp::write_heatmaps(a.out, m, attention.layers(), attention.heads(), pictures,
                                     placement, files);
    }
    png_count += written.size();
    const insp::GridPlacement& p = placement;
    const auto& sizes = is_video ? processed.video_sizes : processed.image_sizes;
    json entry = {{"name", m.name()},
                  {"kind", is_video ? "video" : "image"},
                  {"index", m.index},
                  {"grid", {m.t, m.h, m.w}},
                  {"picture", {pictures[0].height, pictures[0].width}},
                  {"grid_placement", {p.x0, p.y0, p.x1, p.y1}},
                  // Mean over heads of the attention mass on this medium, per layer.
                  {"mass", to_json(m.head_mean().sum(at::IntArrayRef{1, 2, 3}))},
                  {"files", written}};
    if (static_cast<std::size_t>(m.index) < sizes.size()) {
      const auto& s = sizes[static_cast<std::size_t>(m.index)];
      entry["model_input_size"] = {s.first, s.second};
    }
    if (is_video) {
      entry["frames"] = frames_used;
      entry["source"] = a.request.frames.empty() ? json(a.request.video) : json(a.request.frames);
    } else {
      entry["source"] = a.request.images.at(static_cast<std::size_t>(m.index));
    }
    media.push_back(std::move(entry));
  }

  // Query tokens and their text.
  const auto seq = ids_of(sequence[0]);
  json tokens = json::array();
  for (const auto i : attention.query_indices()) {
    const auto id = seq.at(static_cast<std::size_t>(i));
    json token = {{"index", i}, {"id", id}, {"text", processor->tokenizer().decode({id})}};
    if (const auto piece = processor->tokenizer().id_to_token(id)) token["piece"] = *piece;
    tokens.push_back(std::move(token));
  }
  json index = {{"model", a.model},
                {"architecture", model->architecture()},
                {"prompt", processed.prompts.at(0)},
                {"prompt_tokens", prompt_length},
                {"query", {{"selector", query.to_string()}, {"tokens", tokens}}},
                {"layers", attention.layers()},
                {"heads", attention.heads()},
                {"values",
                 "mean over the query rows of the attention probability of each merged patch "
                 "(softmax over all keys); heatmaps divide by the map's maximum"},
                {"numbers", numbers_file},
                {"media", media}};
  if (!generated.is_null()) index["generated"] = generated;

  if (a.logit_lens) {
    const auto lens = insp::logit_lens(*model, *forward, lens_position, a.top_k);
    write_text_file((out / "logit_lens.json").string(),
                    insp::logit_lens_json(lens, lens_position, &processor->tokenizer()) + "\n");
    index["logit_lens"] = "logit_lens.json";
  }
  if (a.save_hidden) {
    const auto tensors = insp::hidden_state_tensors(*forward, attention.layers());
    core::save_tensors((out / "hidden_states.safetensors").string(), tensors,
                       {{"producer", "glimpse inspect"}});
    index["hidden_states"] = "hidden_states.safetensors";
  }
  write_text_file((out / "index.json").string(),
                  index.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  std::printf("wrote %s: %zu heatmap(s) of %zu medium(s), %s, index.json%s%s\n", a.out.c_str(),
              png_count, maps.size(), numbers_file.c_str(), a.logit_lens ? ", logit_lens.json" : "",
              a.save_hidden ? ", hidden_states.safetensors" : "");
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand(
      "inspect", "Attention heatmaps of query tokens over the images and video frames, logit lens");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  add_request_options(*cmd, args->request);
  cmd->add_option("--layers", args->layers, "Decoder layers, e.g. 0,2 (default: all)")
      ->delimiter(',');
  cmd->add_option("--heads", args->heads, "Query heads, e.g. 1,3 (default: all)")->delimiter(',');
  cmd->add_option("--query", args->query,
                  "last | token:I | span:A-B (prompt indices) | generated (the generated tokens)");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "--query generated: tokens to generate")
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{1} << 20));
  cmd->add_option("--numbers", args->numbers, "safetensors (maps.safetensors) or json (maps.json)");
  cmd->add_option("--png", args->png, "all (per head and head means), mean (head means) or none");
  cmd->add_option("--alpha", args->alpha, "Weight of the colour map in the blend (0.5)");
  cmd->add_flag("--smooth", args->smooth, "Bilinear instead of nearest upsampling of the grid");
  cmd->add_option("--logit-lens", args->logit_lens,
                  "Write logit_lens.json at this prompt position (or 'last')");
  cmd->add_option("--top-k", args->top_k, "Logit lens: tokens per layer (5)");
  cmd->add_flag("--save-hidden", args->save_hidden,
                "Write hidden_states.safetensors (the chosen layers' outputs)");
  add_load_options(*cmd, args->load);
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace glimpse::cli
