// describe_image: what `glimpse run` does, through the library: load a checkpoint folder and its
// processor, turn a picture and a question into model inputs, attach FastV through a pipeline,
// generate greedily and print the answer with FastV's report.
//
//   describe_image MODEL_DIR IMAGE "QUESTION" [MAX_NEW_TOKENS=32]
#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/core/system.h"
#include "glimpse/generate/generator.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/pipeline/pipeline.h"
#include "glimpse/text/tokenizer.h"
#include "glimpse/vision/image_io.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE \"QUESTION\" [MAX_NEW_TOKENS=32]\n", argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[1];
    glimpse::core::configure_threads(0);  // one per core (Debian's libtorch starts with one)
    glimpse::core::keep_freed_memory();   // no page faults for every large activation

    auto processor = glimpse::model::Processor::load(dir);
    glimpse::model::LoadOptions load;
    load.dtype = at::kFloat;  // at::kBFloat16 is faster on CPUs with AVX512-BF16
    auto model = glimpse::model::load_model(dir, load);

    glimpse::model::ProcessorRequest request;
    request.images.push_back(glimpse::vision::load_image(argv[2]));
    request.prompt = argv[3];  // one user turn: the image, then this text
    const glimpse::model::ProcessedInputs inputs = processor->process(request);

    auto pipeline = glimpse::pipeline::Pipeline::from_json(
        R"({"methods": [{"type": "fastv", "layer": 2, "ratio": 0.5}]})", "describe_image");
    auto config = glimpse::generate::GenerationConfig::from_checkpoint(dir);
    config.max_new_tokens = argc > 4 ? std::atoi(argv[4]) : 32;
    glimpse::generate::GenerateOptions options;
    options.hooks = &pipeline;
    const auto result = glimpse::generate::generate(*model, inputs.inputs, config, options);

    const at::Tensor ids = result.new_tokens[0].contiguous();
    const std::vector<std::int64_t> answer(ids.data_ptr<std::int64_t>(),
                                           ids.data_ptr<std::int64_t>() + ids.numel());
    glimpse::text::DecodeOptions decode;
    decode.skip_special_tokens = true;
    std::printf("%s\n", processor->tokenizer().decode(answer, decode).c_str());
    std::printf("%s\n", pipeline.report().to_json().c_str());
  } catch (const glimpse::Error& e) {
    std::fprintf(stderr, "describe_image: %s\n", e.what());
    return 1;
  }
  return 0;
}
