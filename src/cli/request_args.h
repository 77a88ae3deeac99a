#pragma once

// The flags that describe one request (media and prompt), shared by `run` and `inspect`, and
// their conversion into a model::ProcessorRequest.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/model/processor.h"

namespace CLI {
class App;
}

namespace glimpse::cli {

struct RequestArgs {
  std::vector<std::string> images;
  std::string video;                    // a file, sampled as qwen-vl-utils does
  std::vector<std::string> frames;      // or the frames of one video, sampled already
  std::optional<double> fps;            // --video: sampling rate; --frames: their frame rate
  std::optional<std::int64_t> nframes;  // --video: frames to sample instead of a rate
  std::string prompt;
  std::string prompt_format = "chat";  // chat | raw
  std::string system;                  // a system message (chat only; empty: the template's)
  model::ProcessorLimits limits;       // --max-image-pixels, --max-video-frames, --max-tokens
};

// --image (repeatable), --video, --frames, --fps, --nframes, --prompt (required),
// --prompt-format, --system, and the request's limits.
void add_request_options(CLI::App& cmd, RequestArgs& args);

// Decodes the images and frames, samples the video (errors name the file) and builds the
// request. A video is always handed over as frames, so that callers can draw on the very
// frames the model sees.
model::ProcessorRequest make_request(const RequestArgs& args);

}  // namespace glimpse::cli
