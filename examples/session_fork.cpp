// session_fork: one picture prefilled once, four follow-up questions answered from forks that
// share its KV cache, decoded together in one batch.
//
//   session_fork MODEL_DIR IMAGE [MAX_NEW_TOKENS=24]
//
// The four requests differ only in their question, so their token ids share a prefix: the chat
// template's head and the image block. That prefix (with the picture) is prefilled once; each
// fork appends its own question and the assistant prompt, and the forks decode as one batch.
// Each answer is what a fresh prefill of its whole request would give.
#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/core/system.h"
#include "glimpse/generate/generator.h"
#include "glimpse/generate/session.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/text/tokenizer.h"
#include "glimpse/vision/image_io.h"

namespace {

std::vector<std::int64_t> ids_of(const at::Tensor& row) {
  const at::Tensor c = row.contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE [MAX_NEW_TOKENS=24]\n", argv[0]);
    return 2;
  }
  const std::vector<std::string> questions = {"What is in the picture?", "What colour is the roof?",
                                              "Is it day or night?", "Describe it in one word."};
  try {
    const std::string dir = argv[1];
    glimpse::core::configure_threads(0);
    glimpse::core::keep_freed_memory();
    auto processor = glimpse::model::Processor::load(dir);
    auto model = glimpse::model::load_model(dir);
    const glimpse::vision::Image image = glimpse::vision::load_image(argv[2]);

    // The four requests, and the prefix of token ids they share.
    std::vector<glimpse::model::ProcessedInputs> requests;
    for (const auto& q : questions) {
      glimpse::model::ProcessorRequest request;
      request.images.push_back(image);
      request.prompt = q;
      requests.push_back(processor->process(request));
    }
    std::vector<std::vector<std::int64_t>> ids;
    for (const auto& r : requests) ids.push_back(ids_of(r.inputs.input_ids[0]));
    std::size_t common = ids[0].size();
    for (const auto& v : ids) {
      std::size_t n = 0;
      while (n < common && n < v.size() && v[n] == ids[0][n]) ++n;
      common = n;
    }
    // The prefix must leave every question something to append.
    for (const auto& v : ids) common = std::min(common, v.size() - 1);

    glimpse::model::ForwardInputs prefix = requests[0].inputs;
    prefix.input_ids = prefix.input_ids.narrow(1, 0, static_cast<std::int64_t>(common));
    prefix.attention_mask = at::Tensor();
    glimpse::generate::Session session(*model);
    session.prefill(prefix);  // the picture and the template's head, once

    std::vector<glimpse::generate::Session> forks = session.fork(4);
    for (std::size_t i = 0; i < forks.size(); ++i) {
      forks[i].append(std::vector<std::int64_t>(ids[i].begin() + common, ids[i].end()));
    }
    glimpse::generate::Session batch = glimpse::generate::Session::stack(std::move(forks));

    auto config = glimpse::generate::GenerationConfig::from_checkpoint(dir);
    config.max_new_tokens = argc > 3 ? std::atoi(argv[3]) : 24;
    if (config.eos_token_ids.empty()) config.eos_token_ids = processor->eos_token_ids();
    const auto result = glimpse::generate::Generator(batch, config).run();

    glimpse::text::DecodeOptions decode;
    decode.skip_special_tokens = true;
    for (std::size_t i = 0; i < questions.size(); ++i) {
      const auto answer =
          ids_of(result.new_tokens[static_cast<std::int64_t>(i)].narrow(0, 0, result.lengths[i]));
      std::printf("Q: %s\nA: %s\n\n", questions[i].c_str(),
                  processor->tokenizer().decode(answer, decode).c_str());
    }
    const auto stats = batch.stats();
    std::printf("prefix: %zu tokens prefilled once; KV bytes shared %lld, per fork %lld\n", common,
                static_cast<long long>(stats.bytes_shared),
                static_cast<long long>(stats.bytes_own / 4));
  } catch (const glimpse::Error& e) {
    std::fprintf(stderr, "session_fork: %s\n", e.what());
    return 1;
  }
  return 0;
}
