#pragma once

// A progress bar for long work (loading shards, decoding video, benchmarks). It draws on stderr
// only when stderr is a terminal and the log level is info or more, so logs and CI output stay
// clean; redraws are throttled to ten per second.

#include <chrono>
#include <cstdint>
#include <string>

namespace glimpse::core {

class Progress {
 public:
  Progress(std::string label, std::int64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(std::int64_t steps = 1);
  void set(std::int64_t done);
  // Draws the final state and ends the line; called by the destructor if needed.
  void finish();

  bool drawing() const { return drawing_; }
  std::int64_t done() const { return done_; }

  // The bar as it would be drawn, for tests: "label [#####     ] 5/10".
  static std::string render(const std::string& label, std::int64_t done, std::int64_t total,
                            int width);

 private:
  void draw(bool force);

  std::string label_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  bool drawing_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace glimpse::core
