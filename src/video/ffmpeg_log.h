#pragma once

// FFmpeg prints to stderr by default. Its messages go to glimpse's log at debug level instead, so
// that a corrupt file gives one error line rather than a page of decoder warnings.

namespace glimpse::video {

// Installs the callback once per process (av_log_set_callback is process-wide).
void route_ffmpeg_log_to_glimpse();

}  // namespace glimpse::video
