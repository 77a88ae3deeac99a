#pragma once

// Leveled logging to stderr. The level comes from set_log_level (the CLI's --log-level flag) or
// the GLIMPSE_LOG_LEVEL environment variable: error, warn, info (default), debug, trace.
//
//   GLIMPSE_LOG(Info) << "loaded " << n << " tensors";

#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace glimpse::core {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3, Trace = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);
std::optional<LogLevel> parse_log_level(std::string_view name);
std::string_view log_level_name(LogLevel level);

// Applies GLIMPSE_LOG_LEVEL when set; an unknown value is an InputError naming the variable.
void init_logging_from_env();

// Writes one line "glimpse[level]: message" to stderr.
void log_message(LogLevel level, std::string_view message);

class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine() { log_message(level_, stream_.str()); }
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace glimpse::core

#define GLIMPSE_LOG(level)                                               \
  if (!::glimpse::core::log_enabled(::glimpse::core::LogLevel::level)) { \
  } else                                                                 \
    ::glimpse::core::LogLine(::glimpse::core::LogLevel::level).stream()
