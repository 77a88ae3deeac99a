// tokenizer_bench: encode throughput (MB/s) of a tokenizer on several MB of mixed-script text
// generated deterministically here (English, code, numbers, CJK, Cyrillic, Arabic, Devanagari,
// emoji, whitespace runs).
//
//   tokenizer_bench TOKENIZER [MEGABYTES=8] [REPEATS=3]
//
// TOKENIZER is anything glimpse::text::Tokenizer::load takes (tokenizer.json, vocab.json,
// tokenizer.model or a checkpoint folder). The text is encoded as documents of about 2 KB, the
// way prompts arrive; the best of REPEATS runs is reported (the first run also fills the BPE
// word cache).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"

namespace {

// A fixed linear congruential generator, so that every run sees the same text.
struct Lcg {
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  std::uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 33);
  }
};

std::vector<std::string> generate_documents(std::size_t total_bytes) {
  static const char* kWords[] = {"the",
                                 "model",
                                 "looks",
                                 "at",
                                 "image",
                                 "and",
                                 "describes",
                                 "what",
                                 "it",
                                 "sees",
                                 "token",
                                 "attention",
                                 "layer",
                                 "Hello",
                                 "world",
                                 "quickly",
                                 "résumé",
                                 "naïve",
                                 "façade",
                                 "Straße",
                                 "你好",
                                 "世界",
                                 "今天",
                                 "天气",
                                 "很好",
                                 "日本語",
                                 "テキスト",
                                 "한국어",
                                 "문장",
                                 "Привет",
                                 "мир",
                                 "данные",
                                 "модель",
                                 "العربية",
                                 "مرحبا",
                                 "नमस्ते",
                                 "दुनिया",
                                 "สวัสดี",
                                 "😀",
                                 "👍🏽",
                                 "🇯🇵",
                                 "x = f(y) + 1;",
                                 "for (int i = 0; i < n; ++i)",
                                 "{\"key\": [1, 2]}",
                                 "https://example.com/a?b=c",
                                 "3.14159",
                                 "2024-03-15",
                                 "1,234,567",
                                 "<|im_start|>"};
  static const char* kSeparators[] = {" ", " ", " ", " ", ", ", ". ", "\n", "  ", "\t", "    "};
  const std::size_t n_words = sizeof(kWords) / sizeof(kWords[0]);
  const std::size_t n_seps = sizeof(kSeparators) / sizeof(kSeparators[0]);
  Lcg rng;
  std::vector<std::string> docs;
  std::size_t bytes = 0;
  while (bytes < total_bytes) {
    std::string doc;
    while (doc.size() < 2048) {
      doc += kWords[rng.next() % n_words];
      doc += kSeparators[rng.next() % n_seps];
    }
    bytes += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOKENIZER [MEGABYTES=8] [REPEATS=3]\n", argv[0]);
    return 2;
  }
  const double megabytes = argc > 2 ? std::atof(argv[2]) : 8.0;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  if (megabytes <= 0 || repeats <= 0) {
    std::fprintf(stderr, "MEGABYTES and REPEATS must be positive\n");
    return 2;
  }
  try {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const auto tok = glimpse::text::Tokenizer::load(argv[1]);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();
    const auto docs = generate_documents(static_cast<std::size_t>(megabytes * 1e6));
    std::size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();

    double best = 1e300;
    std::size_t tokens = 0;
    for (int r = 0; r < repeats; ++r) {
      tokens = 0;
      const auto start = clock::now();
      for (const auto& d : docs) tokens += tok.encode_ids(d).size();
      const double s = std::chrono::duration<double>(clock::now() - start).count();
      std::printf("run %d: %.3f s, %.2f MB/s\n", r + 1, s, bytes / 1e6 / s);
      if (s < best) best = s;
    }
    std::vector<glimpse::text::TokenId> all;
    for (const auto& d : docs) {
      const auto ids = tok.encode_ids(d);
      all.insert(all.end(), ids.begin(), ids.end());
    }
    const auto dstart = clock::now();
    const std::string text = tok.decode(all);
    const double decode_s = std::chrono::duration<double>(clock::now() - dstart).count();

    std::printf("tokenizer      %s (%s), loaded in %.2f s\n", tok.source().c_str(),
                tok.kind().c_str(), load_s);
    std::printf("text           %.2f MB in %zu documents, %zu tokens (%.2f bytes/token)\n",
                bytes / 1e6, docs.size(), tokens, static_cast<double>(bytes) / tokens);
    std::printf("encode         %.2f MB/s (best of %d), %.0f tokens/s\n", bytes / 1e6 / best,
                repeats, tokens / best);
    std::printf("decode         %.2f MB/s (%zu bytes out)\n", text.size() / 1e6 / decode_s,
                text.size());
  } catch (const glimpse::Error& e) {
    std::fprintf(stderr, "tokenizer_bench: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
