// glimpse preprocess --model DIR [--image PATH]... [--video PATH | --frames PATH...] [--fps F]
//                    [--nframes N] [--prompt TEXT [--prompt-format chat|raw]] --out OUT.safetensors
// Runs a model's image and video processor and writes what the HF processor returns:
// pixel_values / image_grid_thw, pixel_values_videos / video_grid_thw and, for Qwen2.5-VL,
// second_per_grid_ts. With --prompt the whole Processor runs (chat template, placeholder
// expansion, tokenizer) and input_ids / attention_mask are written too.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/request_args.h"
#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "glimpse/model/processor.h"
#include "glimpse/models/clip/image_processing.h"
#include "glimpse/models/qwen2_vl/image_processing.h"
#include "glimpse/models/qwen2_vl/vision_process.h"
#include "glimpse/vision/image_io.h"

namespace glimpse::cli {
namespace {

namespace qwen = models::qwen2_vl;

struct PreprocessArgs {
  std::string model;
  std::vector<std::string> images;
  std::vector<std::string> videos;
  std::vector<std::string> frames;
  std::optional<double> fps;
  std::optional<std::int64_t> nframes;
  std::optional<std::string> prompt;
  std::string prompt_format = "chat";
  std::string out;
};

std::string shape_string(const at::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// Errors from smart_resize and the processor do not know the file; add it.
template <typename F>
auto naming(const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (what.rfind("'" + path + "'", 0) == 0) throw;
    throw InputError("'" + path + "': " + what);
  }
}

// --prompt: the whole request through model::Processor, as HF's processor(text=..., images=...,
// videos=...) returns it.
void run_processor(const PreprocessArgs& a) {
  if (a.videos.size() > 1) throw InputError("preprocess --prompt: give one video");
  RequestArgs r;
  r.images = a.images;
  r.video = a.videos.empty() ? std::string() : a.videos[0];
  r.frames = a.frames;
  r.fps = a.fps;
  r.nframes = a.nframes;
  r.prompt = *a.prompt;
  r.prompt_format = a.prompt_format;
  const auto processor = model::Processor::load(a.model);
  const auto processed = processor->process(make_request(r));
  const auto outputs = model::named_tensors(processed.inputs);
  core::save_tensors(a.out, outputs,
                     {{"producer", "glimpse preprocess"}, {"prompt", processed.prompts.at(0)}});
  std::string summary;
  for (const auto& [name, t] : outputs) {
    summary += (summary.empty() ? "" : ", ") + name + " " + shape_string(t);
  }
  std::printf("wrote %s: %s\n", a.out.c_str(), summary.c_str());
}

void run_preprocess(const PreprocessArgs& a) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(a.model) / "config.json").string();
  if (!fs::is_directory(a.model)) throw InputError("'" + a.model + "': no such model folder");
  if (!a.videos.empty() && !a.frames.empty()) {
    throw InputError("preprocess: give either --video or --frames, not both");
  }
  if (a.fps && !(*a.fps > 0.0)) {
    throw InputError("preprocess: --fps must be positive, found " + std::to_string(*a.fps));
  }
  if (a.nframes && a.videos.empty()) {
    throw InputError("preprocess: --nframes applies to --video only");
  }
  if (a.prompt) return run_processor(a);
  const auto config = core::Config::load(config_path);
  const std::string model_type = config.get_string("model_type");
  if (model_type != "qwen2_vl" && model_type != "qwen2_5_vl" && model_type != "llava") {
    throw UnsupportedError(
        "'" + config_path + "': model_type '" + model_type +
        "' is not supported by preprocess (supported: qwen2_vl, qwen2_5_vl, llava)");
  }
  if (a.images.empty() && a.videos.empty() && a.frames.empty()) {
    throw InputError("preprocess: nothing to do; give --image, --video, --frames or --prompt");
  }
  if (model_type == "llava") {
    // CLIPImageProcessor: pixel_values [n_images, 3, H, W]; LLaVA-1.5 takes no videos.
    if (!a.videos.empty() || !a.frames.empty()) {
      throw InputError("preprocess: LLaVA models take images only (no --video or --frames)");
    }
    const auto clip_processor = models::clip::ImageProcessor::from_pretrained(a.model);
    std::vector<vision::Image> images;
    for (const auto& path : a.images) images.push_back(vision::load_image(path));
    const at::Tensor pixels = clip_processor.preprocess(images);
    core::save_tensors(a.out, {{"pixel_values", pixels}},
                       {{"producer", "glimpse preprocess"}, {"model_type", model_type}});
    std::printf("wrote %s: pixel_values %s\n", a.out.c_str(), shape_string(pixels).c_str());
    return;
  }
  const auto processor = qwen::ImageProcessor::from_pretrained(a.model);

  std::vector<std::pair<std::string, at::Tensor>> outputs;
  if (!a.images.empty()) {
    std::vector<qwen::Patches> parts;
    for (const auto& path : a.images) {
      const auto image = vision::load_image(path);
      parts.push_back(naming(path, [&] { return processor.process({image}); }));
    }
    std::vector<at::Tensor> values;
    at::Tensor grid = at::empty({static_cast<std::int64_t>(parts.size()), 3}, at::kLong);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      values.push_back(parts[i].pixel_values);
      for (int j = 0; j < 3; ++j) grid[static_cast<std::int64_t>(i)][j] = parts[i].grid[j];
    }
    outputs.emplace_back("pixel_values", at::cat(values, 0));
    outputs.emplace_back("image_grid_thw", grid);
  }

  std::vector<std::vector<vision::Image>> videos;
  std::vector<double> fps;  // per video, for second_per_grid_ts
  if (!a.frames.empty()) {
    // Pre-sampled frames go straight to the processor, as HF's processor(videos=[frames]).
    std::vector<vision::Image> frames;
    for (const auto& path : a.frames) frames.push_back(vision::load_image(path));
    videos.push_back(std::move(frames));
    fps.push_back(a.fps.value_or(video::kDefaultFps));
  }
  for (const auto& path : a.videos) {
    qwen::VideoOptions options;
    options.sampling.fps = a.fps;
    options.sampling.nframes = a.nframes;
    auto fetched = qwen::fetch_video(path, options);
    videos.push_back(std::move(fetched.frames));
    fps.push_back(fetched.sample_fps);
  }
  if (!videos.empty()) {
    std::vector<at::Tensor> values;
    at::Tensor grid = at::empty({static_cast<std::int64_t>(videos.size()), 3}, at::kLong);
    for (std::size_t i = 0; i < videos.size(); ++i) {
      const std::string name = a.frames.empty() ? a.videos[i] : a.frames.front();
      auto part = naming(name, [&] { return processor.process(videos[i]); });
      values.push_back(part.pixel_values);
      for (int j = 0; j < 3; ++j) grid[static_cast<std::int64_t>(i)][j] = part.grid[j];
    }
    outputs.emplace_back("pixel_values_videos", at::cat(values, 0));
    outputs.emplace_back("video_grid_thw", grid);
    if (model_type == "qwen2_5_vl") {
      outputs.emplace_back("second_per_grid_ts",
                           qwen::second_per_grid_ts(fps, processor.config().temporal_patch_size));
    }
  }

  core::save_tensors(a.out, outputs,
                     {{"producer", "glimpse preprocess"}, {"model_type", model_type}});
  std::string summary;
  for (const auto& [name, t] : outputs) {
    summary += (summary.empty() ? "" : ", ") + name + " " + shape_string(t);
  }
  std::printf("wrote %s: %s\n", a.out.c_str(), summary.c_str());
}

}  // namespace

void add_preprocess_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "preprocess", "Run a model's image/video processor and save its outputs as safetensors");
  auto args = std::make_shared<PreprocessArgs>();
  auto fps = std::make_shared<double>(0.0);
  auto nframes = std::make_shared<std::int64_t>(0);
  cmd->add_option("--model", args->model, "Model folder (config.json, preprocessor_config.json)")
      ->required();
  cmd->add_option("--image", args->images, "An image file (PNG, JPEG, WebP, BMP); repeatable");
  auto* video = cmd->add_option("--video", args->videos,
                                "A video file, sampled and resized as qwen-vl-utils does");
  auto* frames = cmd->add_option("--frames", args->frames,
                                 "Image files that form one pre-sampled video, in order");
  video->excludes(frames);
  auto* fps_opt = cmd->add_option(
      "--fps", *fps, "--video: frames sampled per second (default 2); --frames: their frame rate");
  auto* nframes_opt = cmd->add_option("--nframes", *nframes,
                                      "--video: number of frames to sample instead of --fps");
  fps_opt->excludes(nframes_opt);
  auto prompt = std::make_shared<std::string>();
  auto* prompt_opt = cmd->add_option(
      "--prompt", *prompt,
      "Run the whole processor: the user text (chat) or the full prompt (raw); writes input_ids "
      "and attention_mask too");
  auto* format_opt = cmd->add_option(
      "--prompt-format", args->prompt_format,
      "chat: one user turn through the checkpoint's chat template (default); raw: the prompt as "
      "given, with one placeholder per image or video");
  cmd->add_option("--out", args->out, "Output .safetensors file")->required();
  cmd->callback([args, fps, nframes, prompt, fps_opt, nframes_opt, prompt_opt, format_opt] {
    if (fps_opt->count() > 0) args->fps = *fps;
    if (nframes_opt->count() > 0) args->nframes = *nframes;
    if (prompt_opt->count() > 0) args->prompt = *prompt;
    // Checked here, not with CLI11's needs(), so that the error is one line.
    if (format_opt->count() > 0 && !args->prompt) {
      throw InputError("preprocess: --prompt-format needs --prompt");
    }
    run_preprocess(*args);
  });
}

}  // namespace glimpse::cli
