#include "cli/request_args.h"

#include <CLI/CLI.hpp>

#include "glimpse/core/error.h"
#include "glimpse/models/qwen2_vl/vision_process.h"
#include "glimpse/video/sampling.h"
#include "glimpse/vision/image_io.h"

namespace glimpse::cli {

void add_request_options(CLI::App& cmd, RequestArgs& args) {
  cmd.add_option("--image", args.images, "An image file (repeat for several, in order)");
  cmd.add_option("--video", args.video, "A video file, sampled as qwen-vl-utils does (Qwen)");
  cmd.add_option("--frames", args.frames, "The frames of one video, sampled already, in order");
  cmd.add_option("--fps", args.fps, "--video: frames sampled per second (2); --frames: their rate");
  cmd.add_option("--nframes", args.nframes, "--video: sample this many frames instead");
  cmd.add_option("--prompt", args.prompt, "The user's text (after the media)")->required();
  cmd.add_option("--prompt-format", args.prompt_format,
                 "chat: the checkpoint's chat template; raw: the prompt as it is, placeholders "
                 "included");
  cmd.add_option("--system", args.system, "A system message (chat format)");
  cmd.add_option("--max-image-pixels", args.limits.max_image_pixels,
                 "Refuse images and frames of more pixels (default 178956970, PIL's limit)");
  cmd.add_option("--max-video-frames", args.limits.max_video_frames,
                 "Refuse videos of more sampled frames (default 768)");
  cmd.add_option("--max-tokens", args.limits.max_tokens,
                 "Refuse prompts of more tokens after expansion (0: the model's context)");
}

model::ProcessorRequest make_request(const RequestArgs& args) {
  if (args.prompt_format != "chat" && args.prompt_format != "raw") {
    throw InputError("--prompt-format: expected chat or raw, found '" + args.prompt_format + "'");
  }
  if (!args.video.empty() && !args.frames.empty()) {
    throw InputError("--video and --frames: give one video");
  }
  if (args.fps && !(*args.fps > 0 && *args.fps <= 1000)) {
    throw InputError("--fps: expected a rate in (0, 1000]");
  }
  if (args.nframes && *args.nframes <= 0) throw InputError("--nframes: must be positive");
  if (args.nframes && args.video.empty()) throw InputError("--nframes: needs --video");

  if (args.limits.max_image_pixels < 1 || args.limits.max_video_frames < 1 ||
      args.limits.max_tokens < 0)
    throw InputError(
        "--max-image-pixels and --max-video-frames: must be positive; --max-tokens >= 0");
  model::ProcessorRequest request;
  request.limits = args.limits;
  vision::DecodeOptions decode;  // refused from the file's header, before decoding
  decode.max_pixels = args.limits.max_image_pixels;
  for (const auto& path : args.images) request.images.push_back(vision::load_image(path, decode));
  if (!args.frames.empty()) {
    if (static_cast<std::int64_t>(args.frames.size()) > args.limits.max_video_frames)
      throw InputError("--frames: " + std::to_string(args.frames.size()) +
                       " frames exceed --max-video-frames " +
                       std::to_string(args.limits.max_video_frames));
    model::VideoInput v;
    for (const auto& path : args.frames) v.frames.push_back(vision::load_image(path, decode));
    v.fps = args.fps.value_or(video::kDefaultFps);
    request.videos.push_back(std::move(v));
  } else if (!args.video.empty()) {
    models::qwen2_vl::VideoOptions options;
    options.sampling.fps = args.fps;
    options.sampling.nframes = args.nframes;
    auto fetched = models::qwen2_vl::fetch_video(args.video, options);
    model::VideoInput v;
    v.frames = std::move(fetched.frames);
    v.fps = fetched.sample_fps;
    request.videos.push_back(std::move(v));
  }
  if (args.prompt_format == "raw") {
    if (!args.system.empty()) throw InputError("--system: needs --prompt-format chat");
    request.family = text::ChatFamily::Raw;
    request.prompt = args.prompt;
    return request;
  }
  if (args.system.empty()) {
    request.prompt = args.prompt;
    return request;
  }
  // A system turn, then the user turn with the media first (as ProcessorRequest::prompt would).
  text::ChatMessage user{"user", {}};
  for (std::size_t i = 0; i < request.images.size(); ++i)
    user.content.push_back(text::ContentPart::image());
  for (std::size_t i = 0; i < request.videos.size(); ++i)
    user.content.push_back(text::ContentPart::video());
  user.content.push_back(text::ContentPart::make_text(args.prompt));
  request.messages = {text::ChatMessage::text("system", args.system), std::move(user)};
  return request;
}

}  // namespace glimpse::cli
