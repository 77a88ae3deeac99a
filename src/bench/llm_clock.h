#pragma once

// Times the language-model part of a whole prefill: from the moment vision.out hands the visual
// features to the LLM (after any vision-side method such as VisionZip has reduced them) to the
// end of the pass. It wraps the pipeline under test (or nothing, for the plain run) and forwards
// every site to it, so that both runs are measured the same way.

#include <chrono>

#include "bench/forwarding_hooks.h"

namespace glimpse::bench {

class LlmClock : public ForwardingHooks {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LlmClock(model::ForwardHooks* inner) : ForwardingHooks(inner) {}

  // Started at vision.out; a pass without one (text only) counts from construction.
  Clock::time_point start() const { return start_; }

  void on_vision_out(model::VisionOut& v) override {
    ForwardingHooks::on_vision_out(v);
    start_ = Clock::now();
  }

 private:
  Clock::time_point start_ = Clock::now();
};

}  // namespace glimpse::bench
