#include "models/qwen2_vl/processor.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/models/qwen2_vl/vision_process.h"
#include "glimpse/text/tokenizer.h"
#include "models/qwen2_vl/rope_index.h"

namespace glimpse::models::qwen2_vl {
namespace {

namespace fs = std::filesystem;

// The placeholder strings of Qwen2VLProcessor.__init__ (tokenizer.image_token, else these).
const std::string kImageToken = "<|image_pad|>";
const std::string kVideoToken = "<|video_pad|>";

template <typename F>
auto naming(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError& e) {
    throw InputError(what + ": " + e.what());
  }
}

at::Tensor grid_tensor(const std::vector<Patches>& parts) {
  at::Tensor grid = at::empty({static_cast<std::int64_t>(parts.size()), 3}, at::kLong);
  auto* g = grid.data_ptr<std::int64_t>();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    for (std::size_t j = 0; j < 3; ++j) g[3 * i + j] = parts[i].grid[j];
  }
  return grid;
}

at::Tensor pixel_tensor(const std::vector<Patches>& parts) {
  std::vector<at::Tensor> values;
  for (const auto& p : parts) values.push_back(p.pixel_values);
  return values.size() == 1 ? values[0] : at::cat(values, 0);
}

}  // namespace

Qwen2VLProcessor::Qwen2VLProcessor(const std::string& dir)
    : model::Processor(dir),
      config_(parse_config(core::Config::load((fs::path(dir) / "config.json").string()))),
      image_processor_(ImageProcessor::from_pretrained(dir)) {
  const std::string source = (fs::path(dir) / "config.json").string();
  // The model finds its placeholders by id; the processor writes them as strings.
  const std::pair<const std::string*, std::int64_t> tokens[] = {
      {&kImageToken, config_.image_token_id}, {&kVideoToken, config_.video_token_id}};
  for (const auto& [token, id] : tokens) {
    const auto found = tokenizer().token_to_id(*token);
    if (!found || *found != id) {
      throw ConfigError(source + ": the tokenizer gives '" + *token + "' id " +
                        (found ? std::to_string(*found) : std::string("none")) +
                        " but the model expects " + std::to_string(id));
    }
  }
  const auto& ip = image_processor_.config();
  const auto& v = config_.vision;
  if (ip.merge_size != v.spatial_merge_size || ip.patch_size != v.patch_size ||
      ip.temporal_patch_size != v.temporal_patch_size) {
    throw ConfigError(
        (fs::path(dir) / "preprocessor_config.json").string() +
        ": patch_size / temporal_patch_size / merge_size (" + std::to_string(ip.patch_size) + ", " +
        std::to_string(ip.temporal_patch_size) + ", " + std::to_string(ip.merge_size) +
        ") differ from the vision config's (" + std::to_string(v.patch_size) + ", " +
        std::to_string(v.temporal_patch_size) + ", " + std::to_string(v.spatial_merge_size) + ")");
  }
}

model::ProcessedInputs Qwen2VLProcessor::process(const model::ProcessorRequest& request) const {
  model::ProcessedInputs out;
  const std::string prompt = render(request, kImageToken, kVideoToken);
  const auto& ip = image_processor_.config();

  std::vector<Patches> images;
  for (std::size_t i = 0; i < request.images.size(); ++i) {
    const std::string what = "image " + std::to_string(i);
    check_image(request.images[i], what);
    images.push_back(naming(what, [&] { return image_processor_.process({request.images[i]}); }));
  }

  std::vector<Patches> videos;
  std::vector<double> fps;  // per video: the fps the reference processor receives
  for (std::size_t i = 0; i < request.videos.size(); ++i) {
    const auto& v = request.videos[i];
    const std::string what = "video " + std::to_string(i);
    if (!v.path.empty() && !v.frames.empty()) {
      throw InputError(what + ": give either a path or frames, not both");
    }
    if (!v.path.empty()) {
      // qwen-vl-utils fetch_video, then the processor gets fps=sample_fps.
      std::error_code ec;
      if (!fs::is_regular_file(v.path, ec)) {
        throw InputError(what + ": '" + v.path + "': no such file");
      }
      if (v.sample_fps < 0 || v.nframes < 0) {
        throw InputError(what + ": sample_fps and nframes must not be negative");
      }
      VideoOptions options;
      if (v.sample_fps > 0) options.sampling.fps = v.sample_fps;
      if (v.nframes > 0) options.sampling.nframes = v.nframes;
      auto fetched = naming(what, [&] { return fetch_video(v.path, options); });
      check_frames(fetched.frames.size(), request.limits, what);
      videos.push_back(naming(what, [&] { return image_processor_.process(fetched.frames); }));
      fps.push_back(fetched.sample_fps);
    } else {
      if (v.frames.empty()) throw InputError(what + " has neither a path nor frames");
      if (!(v.fps > 0)) {
        throw InputError(what + ": fps must be positive, found " + std::to_string(v.fps));
      }
      for (std::size_t f = 0; f < v.frames.size(); ++f) {
        check_image(v.frames[f], what + " frame " + std::to_string(f));
      }
      videos.push_back(naming(what, [&] { return image_processor_.process(v.frames); }));
      fps.push_back(v.fps);
    }
  }

  // Qwen2VLProcessor.__call__: each placeholder, in order, becomes grid.prod() // merge_size**2
  // copies (images and videos counted separately).
  const std::int64_t merge_length = ip.merge_size * ip.merge_size;
  std::string expanded;
  std::size_t pos = 0, image = 0, video = 0;
  while (true) {
    const std::size_t hit_image = prompt.find(kImageToken, pos);
    const std::size_t hit_video = prompt.find(kVideoToken, pos);
    const std::size_t hit = std::min(hit_image, hit_video);
    if (hit == std::string::npos) break;
    const bool is_image = hit == hit_image;
    const auto& grid = is_image ? images.at(image++).grid : videos.at(video++).grid;
    const std::string& token = is_image ? kImageToken : kVideoToken;
    expanded.append(prompt, pos, hit - pos);
    const std::int64_t n = grid[0] * grid[1] * grid[2] / merge_length;
    for (std::int64_t k = 0; k < n; ++k) expanded += token;
    pos = hit + token.size();
  }
  expanded.append(prompt, pos, std::string::npos);
  tokenize(expanded, out.inputs, request.limits);

  auto& in = out.inputs;
  if (!images.empty()) {
    in.pixel_values = pixel_tensor(images);
    in.image_grid_thw = grid_tensor(images);
    for (const auto& p : images) {
      out.image_sizes.emplace_back(p.grid[1] * ip.patch_size, p.grid[2] * ip.patch_size);
    }
  }
  if (!videos.empty()) {
    in.pixel_values_videos = pixel_tensor(videos);
    in.video_grid_thw = grid_tensor(videos);
    // Qwen2_5_VLProcessor: second_per_grid_ts = temporal_patch_size / fps per video.
    if (config_.vision.is_2_5) {
      in.second_per_grid_ts = second_per_grid_ts(fps, ip.temporal_patch_size);
    }
    for (const auto& p : videos) {
      out.video_sizes.emplace_back(p.grid[1] * ip.patch_size, p.grid[2] * ip.patch_size);
    }
  }
  out.prompts.push_back(prompt);
  out.layout = token_layout(in);
  return out;
}

model::TokenLayout Qwen2VLProcessor::token_layout(const model::ForwardInputs& inputs) const {
  // The model's prefill layout comes from the same call (modeling.cpp: get_rope_index).
  return get_rope_index(config_, inputs.input_ids, inputs.image_grid_thw, inputs.video_grid_thw,
                        inputs.second_per_grid_ts, inputs.attention_mask)
      .layout;
}

}  // namespace glimpse::models::qwen2_vl
