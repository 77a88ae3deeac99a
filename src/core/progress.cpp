#include "glimpse/core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "glimpse/core/logging.h"

namespace glimpse::core {

Progress::Progress(std::string label, std::int64_t total)
    : label_(std::move(label)),
      total_(std::max<std::int64_t>(total, 0)),
      drawing_(::isatty(STDERR_FILENO) == 1 && log_enabled(LogLevel::Info)) {}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::advance(std::int64_t steps) {
  set(done_ + steps);
}

void Progress::set(std::int64_t done) {
  done_ = std::clamp<std::int64_t>(done, 0, total_);
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!drawing_) return;
  draw(true);
  std::fputc('\n', stderr);
}

std::string Progress::render(const std::string& label, std::int64_t done, std::int64_t total,
                             int width) {
  const std::int64_t filled = total > 0 ? width * std::min(done, total) / total : width;
  std::string bar = label + " [";
  bar.append(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), ' ');
  bar += "] " + std::to_string(done) + "/" + std::to_string(total);
  return bar;
}

void Progress::draw(bool force) {
  if (!drawing_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::fprintf(stderr, "\r%s", render(label_, done_, total_, 30).c_str());
  std::fflush(stderr);
}

}  // namespace glimpse::core
