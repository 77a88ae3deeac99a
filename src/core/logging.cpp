#include "glimpse/core/logging.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "glimpse/core/error.h"

namespace glimpse::core {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_write_mutex;

constexpr std::string_view kNames[] = {"error", "warn", "info", "debug", "trace"};

}  // namespace

void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level));
}

LogLevel log_level() {
  return static_cast<LogLevel>(g_level.load());
}

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load();
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (int i = 0; i < 5; ++i) {
    if (kNames[i] == name) return static_cast<LogLevel>(i);
  }
  if (name == "warning") return LogLevel::Warn;
  return std::nullopt;
}

std::string_view log_level_name(LogLevel level) {
  return kNames[static_cast<int>(level)];
}

void init_logging_from_env() {
  const char* env = std::getenv("GLIMPSE_LOG_LEVEL");
  if (env == nullptr || *env == '\0') return;
  const auto level = parse_log_level(env);
  if (!level) {
    throw InputError(std::string("GLIMPSE_LOG_LEVEL='") + env +
                     "': expected error, warn, info, debug or trace");
  }
  set_log_level(*level);
}

void log_message(LogLevel level, std::string_view message) {
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::fprintf(stderr, "glimpse[%s]: %.*s\n", kNames[static_cast<int>(level)].data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace glimpse::core
