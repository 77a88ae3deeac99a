#include "glimpse/video/decoder.h"

extern "C" {
#include <libavutil/log.h>
}

#include <cstdarg>
#include <mutex>
#include <string>

#include "glimpse/core/logging.h"

namespace glimpse::video {
namespace {

void log_callback(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING || !core::log_enabled(core::LogLevel::Debug)) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, args, line, sizeof(line), &print_prefix);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  GLIMPSE_LOG(Debug) << "ffmpeg: " << text;
}

}  // namespace

void route_ffmpeg_log_to_glimpse() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(log_callback); });
}

}  // namespace glimpse::video
