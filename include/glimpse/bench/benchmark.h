#pragma once

// `glimpse bench`: times vision encoding, prefill and decode of a loaded model on synthetic
// inputs of a chosen size, and relates them to the machine's measured GEMM peak and memory
// bandwidth. Only the public model API is used (plus the vision entry points of the Qwen2-VL
// and LLaVA classes for the vision time), so the figures are what a user of the library gets.

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/bench/machine_limits.h"
#include "glimpse/model/model.h"
#include "glimpse/pipeline/pipeline.h"

namespace glimpse::bench {

struct BenchOptions {
  // Qwen: merged visual tokens (a grid (1, 2h, 2w) with h*w = N, h and w near square); 0 for
  // none; -1 for 1024 (or what --image-size gives). LLaVA: fixed by the config (576 for 1.5-7B);
  // -1 or that number. Text-only models: -1 or 0.
  std::int64_t visual_tokens = -1;
  // Qwen: an image of this size, resized by the image processor's smart_resize (default
  // min/max_pixels); overrides visual_tokens.
  std::int64_t image_width = 0, image_height = 0;
  // Text tokens of the prompt, counting <|vision_start|> and <|vision_end|>.
  std::int64_t text_tokens = 64;
  std::int64_t new_tokens = 16;
  int warmup = 1;
  int repeat = 3;
  bool machine_limits = true;  // measure GEMM peak and bandwidth
  bool profile = false;        // time the ops of one decoder layer at the prefill/decode shapes
  // Test-time methods (not owned): when set, every timed run is made twice in the same process,
  // without and with the methods, and BenchResult::pipeline holds the second timings.
  pipeline::Pipeline* pipeline = nullptr;
  // Candidates decoded in one batch (0 or 1: off): after one prefill, `new_tokens` greedy steps
  // of one fork and then of `candidates` forks stacked into one batch, from the same prefix,
  // alternated over the repeats (Session::fork / Session::stack).
  std::int64_t candidates = 0;
  // KV-cache methods at long contexts (needs `pipeline`): one prefill with the methods' probes,
  // forked into a dense state and one the methods compress; every repeat then decodes
  // `new_tokens` on fresh forks of each and times each layer's decode attention over both caches
  // (BenchResult::kv_decode). The per-repeat prefill timings are skipped.
  bool kv_decode = false;
};

// Batched decoding of forks against one sequence, in the same process (BenchOptions::candidates).
struct CandidateTimings {
  std::int64_t candidates = 0;
  double single_ms_per_step = 0, batch_ms_per_step = 0;  // medians of the repeats
  std::vector<double> single_ms_runs, batch_ms_runs;
  double single_tokens_per_s = 0, batch_tokens_per_s = 0;  // aggregate over the sequences
  double aggregate_speedup = 0;                            // batch / single tokens per second
  std::int64_t bytes_shared = 0, bytes_per_fork = 0;       // KV of the batch after decoding
};

// Timings of the runs with the pipeline (see BenchOptions::pipeline) and their speedups against
// the plain runs of the same process.
struct PipelineTimings {
  double prefill_ms = 0, end_to_end_prefill_ms = 0, decode_ms_per_token = 0;
  std::vector<double> prefill_ms_runs, end_to_end_prefill_ms_runs, decode_ms_runs;
  // The plain LLM prefill that prefill_speedup divides: with media, the LLM part of a whole
  // prefill timed from vision.out on (as prefill_ms with the methods, so that vision-side
  // methods count); without, BenchResult::prefill_ms.
  double plain_prefill_ms = 0;
  std::vector<double> plain_prefill_ms_runs;
  // plain / pipeline
  double prefill_speedup = 0, end_to_end_prefill_speedup = 0, decode_speedup = 0;
  std::int64_t kv_bytes = 0;
  std::string report_json;  // Pipeline::report() of the last run with the methods
};

// Decode on forks of one prefill, without and with the KV methods (BenchOptions::kv_decode).
struct KvDecodeTimings {
  std::int64_t context = 0;  // prompt tokens
  double prefill_ms = 0;     // the one prefill (with the methods' probes)
  double dense_ms_per_token = 0, method_ms_per_token = 0;  // medians of the repeats
  std::vector<double> dense_ms_runs, method_ms_runs;
  double dense_tokens_per_s = 0, method_tokens_per_s = 0, speedup = 0;
  // Decode attention of one token summed over the layers (the part a KV method controls):
  // dense attention over the full cache against the methods' cache.
  double dense_attention_ms = 0, method_attention_ms = 0, attention_ratio = 0;
  std::vector<double> dense_attention_ms_runs, method_attention_ms_runs;
  std::int64_t bytes_full = 0, bytes_held = 0;  // the compressed state's kv report
  double bytes_ratio = 0;
  // (weights read per token + full KV) / (weights + held KV): the whole-token speed-up a
  // memory-bound decode could reach, for information.
  double ideal_speedup = 0;
  // The process's resident memory measured with the dense cache alone (after the prefill) and
  // with the compressed one alone (the dense state released at the end); with the CLI's
  // --malloc-default freed blocks go back to the system, so the drop shows the bytes freed.
  std::int64_t rss_dense_bytes = 0, rss_compressed_bytes = 0;
  std::string kv_report;  // DecodeState::kv_report of the compressed state after the prefill
  std::string report_json;
};

// One op of a decoder layer timed in isolation (see profile_decoder_layer).
struct OpTime {
  std::string phase;  // "prefill" or "decode"
  std::string op;
  double ms = 0;  // per layer (median of repeats)
};

struct BenchResult {
  std::string architecture, family, dtype;
  std::string weights;  // how the caller loaded them: "resident" or "mapped" (LoadOptions)
  int threads = 0;
  // Shape
  std::int64_t visual_tokens = 0, text_tokens = 0, prefill_tokens = 0, new_tokens = 0;
  std::int64_t vision_patches = 0;
  std::vector<std::int64_t> image_grid_thw;        // Qwen
  std::int64_t image_width = 0, image_height = 0;  // the (resized) image the grid stands for
  // Model
  std::int64_t llm_parameters = 0, vision_parameters = 0, weight_bytes = 0;
  // Timings (ms, median of repeats)
  double init_ms = 0, load_ms = 0;
  double vision_ms = 0;  // vision tower (+ merger / projector) alone
  // Prefill: the language model over the prompt, the vision features given (vision_ms is the
  // tower's own time). This is what prefill_flops counts and what FastV prunes.
  double prefill_ms = 0;
  // How prefill_ms was measured: "image_embeds" (the real token layout, the tower's output
  // precomputed by Model::embed_media), "text" (text tokens in place of the image: models without
  // embed_media) or "prefill" (no media).
  std::string prefill_input;
  double prefill_tokens_per_s = 0;  // prefill_tokens / prefill_ms
  // Pixels to first logits in one forward_cached: vision tower, embedding, M-RoPE index, decoder
  // (what a user waits for before the first token).
  double end_to_end_prefill_ms = 0;
  double decode_ms_per_token = 0, decode_tokens_per_s = 0;
  std::vector<double> prefill_ms_runs, end_to_end_prefill_ms_runs, vision_ms_runs, decode_ms_runs;
  // Decode through an empty Pipeline (the engine skips inactive hooks), for information: within
  // noise of the plain decode above.
  double empty_pipeline_decode_ms_per_token = 0;
  std::vector<double> empty_pipeline_decode_ms_runs;
  // Memory
  std::int64_t peak_rss_bytes = 0, kv_bytes = 0;
  // Work
  double prefill_flops = 0;           // LLM prefill, see docs/PERFORMANCE.md
  double decode_bytes_per_token = 0;  // weights + mean KV read per decode step
  // Machine
  std::vector<GemmResult> gemm;
  double gemm_peak_gflops = 0;  // the best of the prefill GEMM shapes
  // FLOP-weighted throughput of the decoder layer's own GEMM mix (q, k, v, o, gate, up, down at
  // the prefill length): what the LLM prefill would reach if everything but GEMMs were free.
  double gemm_mix_gflops = 0;
  double mem_bandwidth_gbs = 0;
  // prefill_flops / prefill_ms against gemm_peak_gflops (the strict figure), and against
  // gemm_mix_gflops.
  double prefill_flops_utilization = 0, prefill_flops_utilization_mix = 0;
  double decode_bandwidth_utilization = 0;
  std::vector<OpTime> profile;
  bool has_pipeline = false;
  PipelineTimings pipeline;
  CandidateTimings candidates;
  bool has_kv_decode = false;
  KvDecodeTimings kv_decode;
};

// Runs the benchmark on `model`. Throws InputError for sizes the model cannot take.
BenchResult run_benchmark(model::Model& model, const BenchOptions& options);

// One-line JSON object with every field above and system_info().
std::string to_json(const BenchResult& result);
// A human-readable report.
std::string to_text(const BenchResult& result);

// Current and peak resident set size of this process, in bytes.
std::int64_t current_rss_bytes();
std::int64_t peak_rss_bytes();

}  // namespace glimpse::bench
