// cyberv_video: CyberV's sensor-and-controller loop answering a multiple-choice question about a
// video, here one drawn in code (64 frames: a square that crosses the picture and turns from red
// to blue halfway), and the rounds it ran.
//
//   cyberv_video MODEL_DIR [CANDIDATES=4] [THETA=0.3]
//
// The prompt (video and question) is prefilled once; round 1's candidates fork it, and a second
// round, when the Score Forest does not settle, appends the key frames CyberV picked from the
// attention drift. A random-weight checkpoint (glimpse init-random) runs it too: the answer is
// then noise, but the rounds and their costs are real.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "glimpse/core/error.h"
#include "glimpse/core/system.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/method_context.h"
#include "glimpse/pipeline/pipeline.h"

namespace {

// Frame f of the drawn video: a grey background and a square moving left to right, red for the
// first half and blue after.
glimpse::vision::Image frame(int f, int frames) {
  const int w = 224, h = 168, side = 40;
  glimpse::vision::Image img(w, h);
  const int x0 = (w - side) * f / (frames - 1), y0 = (h - side) / 2;
  const bool late = f >= frames / 2;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = img.pixel(x, y);
      const bool in = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
      p[0] = in ? (late ? 20 : 220) : 128;
      p[1] = in ? 30 : 128;
      p[2] = in ? (late ? 220 : 20) : 128;
    }
  }
  return img;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [CANDIDATES=4] [THETA=0.3]\n", argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const int candidates = argc > 2 ? std::atoi(argv[2]) : 4;
    const double theta = argc > 3 ? std::atof(argv[3]) : 0.3;
    glimpse::core::configure_threads(0);
    auto processor = glimpse::model::Processor::load(dir);
    auto model = glimpse::model::load_model(dir);

    glimpse::model::ProcessorRequest request;
    glimpse::model::VideoInput video;
    video.fps = 2.0;  // 64 frames over 32 s
    for (int f = 0; f < 64; ++f) video.frames.push_back(frame(f, 64));
    request.videos.push_back(std::move(video));
    request.prompt =
        "What colour is the square at the end of the video?\nA. red\nB. blue\nC. green\n"
        "D. yellow\nAnswer with the option's letter.";
    const auto processed = processor->process(request);

    const nlohmann::json spec = {{"controller",
                                  {{"type", "cyberv"},
                                   {"candidates", candidates},
                                   {"theta", theta},
                                   {"max_thinking_tokens", 64},
                                   {"force_letter", true}}}};
    auto pipeline = glimpse::pipeline::Pipeline::from_json(spec.dump(), "cyberv_video");
    pipeline.bind(glimpse::pipeline::MethodContext(*model, processor.get()));

    glimpse::generate::Session session(*model, &pipeline);
    session.prefill(processed.inputs);  // the video and the question, once
    glimpse::pipeline::ControllerRequest round;
    round.session = &session;
    round.config.max_new_tokens = 8;
    round.config.eos_token_ids = processor->eos_token_ids();
    round.request = &request;
    round.processed = &processed;
    const auto answer = pipeline.controller()->run(round);

    const auto report = nlohmann::json::parse(pipeline.report().to_json()).at("controller");
    int r = 1;
    for (const auto& rd : report.at("rounds")) {
      std::printf("round %d: %s\n", r++, rd.dump().c_str());
    }
    std::printf("answer (round %lld, candidate %lld): %s\n",
                static_cast<long long>(answer.round + 1), static_cast<long long>(answer.candidate),
                answer.answer.c_str());
    return 0;
  } catch (const glimpse::Error& e) {
    std::fprintf(stderr, "cyberv_video: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cyberv_video: %s\n", e.what());
    return 3;
  }
}
