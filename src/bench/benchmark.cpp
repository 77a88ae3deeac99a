#include "glimpse/bench/benchmark.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "bench/internal.h"
#include "bench/llm_clock.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/error.h"
#include "glimpse/core/system.h"
#include "glimpse/generate/session.h"
#include "kernels/ops.h"
#include "layers/modules.h"

namespace glimpse::bench {
namespace {

std::string dtype_name(c10::ScalarType t) {
  return t == at::kBFloat16 ? "bf16" : "f32";
}

// Text token ids that are no placeholder: small ids, away from the specials of every family.
at::Tensor text_ids(std::int64_t n, std::int64_t vocab) {
  const std::int64_t range = std::max<std::int64_t>(std::min<std::int64_t>(vocab, 256) - 16, 1);
  return (at::arange(n, at::TensorOptions().dtype(at::kLong)) * 7 + 3).remainder(range) + 3;
}

struct Synthetic {
  model::ForwardInputs inputs;
  // The same prompt length with text in place of the image and no pixels: the LLM part of the
  // prefill timed on its own (a difference of two noisy timings can come out negative).
  model::ForwardInputs text_only;
  std::function<void()> run_vision;  // the vision tower alone; empty for text-only models
};

Synthetic make_inputs(model::Model& m, const BenchOptions& o, BenchResult& r) {
  Synthetic s;
  const std::int64_t vocab = m.vocab_size();
  if (o.text_tokens < 0) throw InputError("--text-tokens: expected >= 0");
  model::SyntheticImageRequest request;
  request.width = o.image_width;
  request.height = o.image_height;
  request.visual_tokens = o.visual_tokens;
  const auto image = m.accepts_images() ? m.synthetic_image(request) : std::nullopt;
  if (!image) {
    if (!m.accepts_images() && (o.visual_tokens > 0 || o.image_width > 0 || o.image_height > 0))
      throw InputError("--visual-tokens/--image-size: " + m.architecture() + " takes no images");
    s.inputs.input_ids = text_ids(std::max<std::int64_t>(o.text_tokens, 1), vocab).view({1, -1});
    r.text_tokens = s.inputs.input_ids.size(1);
    return s;
  }
  // The image's markers (Qwen's <|vision_start|>, <|vision_end|>) count as text tokens.
  const std::int64_t markers = image->placeholder_ids.numel() - image->visual_tokens;
  if (o.text_tokens < markers) {
    throw InputError("--text-tokens: at least " + std::to_string(markers) +
                     " with an image (its start and end markers)");
  }
  const std::int64_t before = (o.text_tokens - markers) / 2,
                     after = o.text_tokens - markers - before;
  s.inputs.input_ids =
      at::cat({text_ids(before, vocab), image->placeholder_ids, text_ids(after, vocab)})
          .view({1, -1});
  s.inputs.pixel_values = image->pixel_values;
  s.inputs.image_grid_thw = image->image_grid_thw;
  r.visual_tokens = image->visual_tokens;
  r.text_tokens = o.text_tokens;
  r.vision_patches = image->vision_patches;
  r.image_height = image->height;
  r.image_width = image->width;
  if (image->image_grid_thw.defined()) {
    const at::Tensor g = image->image_grid_thw.contiguous();
    r.image_grid_thw.assign(g.data_ptr<std::int64_t>(), g.data_ptr<std::int64_t>() + 3);
  }
  s.text_only.input_ids = text_ids(s.inputs.input_ids.size(1), vocab).view({1, -1});
  const model::ForwardInputs media = s.inputs;
  s.run_vision = [&m, media] { (void)m.embed_media(media); };
  return s;
}

// ---------------------------------------------------------------------------------------------
// One decoder layer's ops in isolation, written like layers/decoder.cpp and layers/modules.cpp
// run them, so that the split of a layer's time between ops can be read without timers in the
// model code.

double time_op(const std::function<void()>& f, int repeat) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < std::max(1, repeat); ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(ms_since(t0));
  }
  return median(t);
}

std::vector<OpTime> profile_layer(const layers::DecoderConfig& c, c10::ScalarType dtype,
                                  const std::string& phase, std::int64_t s, std::int64_t t,
                                  int repeat) {
  const auto opts = at::TensorOptions().dtype(dtype);
  const std::int64_t h = c.hidden_size, d = c.head_dim, heads = c.num_heads, kvh = c.num_kv_heads,
                     q_dim = heads * d, kv_dim = kvh * d, inter = c.intermediate_size;
  auto w = [&](std::int64_t out, std::int64_t in) { return at::randn({out, in}, opts) * 0.02; };
  const at::Tensor x = at::randn({1, s, h}, opts), gain = at::ones({h}, opts);
  const at::Tensor wq = w(q_dim, h), wk = w(kv_dim, h), wv = w(kv_dim, h), wo = w(h, q_dim);
  const at::Tensor bq = at::zeros({q_dim}, opts), bkv = at::zeros({kv_dim}, opts);
  const at::Tensor wg = w(inter, h), wu = w(inter, h), wd = w(h, inter);
  const at::Tensor q = at::randn({1, heads, s, d}, opts), k = at::randn({1, kvh, t, d}, opts),
                   v = at::randn({1, kvh, t, d}, opts);
  at::Tensor mask;
  if (s > 1) {
    mask = at::zeros({1, 1, s, t}, opts)
               .masked_fill_(at::ones({s, t}, at::TensorOptions().dtype(at::kBool)).triu(t - s + 1),
                             layers::mask_min(dtype));
  }
  const at::Tensor attn_out = at::randn({1, s, q_dim}, opts);
  const at::Tensor gate = at::randn({1, s, inter}, opts), up = at::randn({1, s, inter}, opts);
  // Real rotations (|cos|^2 + |sin|^2 = 1), so that RoPE applied in place again and again stays
  // finite.
  const at::Tensor angle = at::rand({1, s, d}) * 6.28;
  const at::Tensor cos = angle.cos().to(dtype), sin = angle.sin().to(dtype);
  const at::Tensor qp = at::randn({1, s, heads, d}, opts), kp = at::randn({1, s, kvh, d}, opts);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const layers::Linear lq{wq, bq}, lk{wk, bkv}, lv{wv, bkv}, lo{wo, {}}, lg{wg, {}}, lu{wu, {}},
      ld{wd, {}};
  const bool one_row = kernels::gemv_applies(x, wq);
  std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"rms_norm x2",
       [&] {
         for (int i = 0; i < 2; ++i) (void)kernels::rms_norm(x, gain, 1e-6);
       }},
      {"q/k/v proj",
       [&] {
         if (one_row) {
           (void)kernels::gemv(x, {{&wq, &bq}, {&wk, &bkv}, {&wv, &bkv}});
         } else {
           (void)lq(x);
           (void)lk(x);
           (void)lv(x);
         }
       }},
      {"rope q,k (in place)",
       [&] {
         kernels::rope_(qp, cos, sin);
         kernels::rope_(kp, cos, sin);
       }},
      {"attention (chunked, fused softmax)",
       [&] { (void)layers::attention(q, k, v, scale, mask, /*causal=*/true); }},
      {"o proj", [&] { (void)lo(attn_out); }},
      {"gate+up proj",
       [&] {
         if (one_row) {
           (void)kernels::gemv_silu_mul(x, {&wg, nullptr}, {&wu, nullptr});
         } else {
           (void)lg(x);
           (void)lu(x);
         }
       }},
      {"silu(gate)*up", [&] { kernels::silu_mul_(gate, up); }},
      {"down proj", [&] { (void)ld(one_row ? gate.narrow(1, 0, 1) : gate); }},
      {"residual adds x2",
       [&] {
         (void)(x + x);
         (void)(x + x);
       }},
  };
  std::vector<OpTime> out;
  for (const auto& [name, f] : ops) out.push_back({phase, name, time_op(f, repeat)});
  return out;
}

}  // namespace

std::int64_t current_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

std::int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // kilobytes on Linux
}

BenchResult run_benchmark(model::Model& m, const BenchOptions& o) {
  if (o.new_tokens < 0) throw InputError("--new-tokens: expected >= 0");
  if (o.repeat < 1) throw InputError("--repeat: expected >= 1");
  if (o.warmup < 0) throw InputError("--warmup: expected >= 0");
  BenchResult r;
  r.architecture = m.architecture();
  r.family = family_name(detect_family(m.config()));
  r.dtype = dtype_name(m.dtype());
  r.threads = at::get_num_threads();
  r.new_tokens = o.new_tokens;

  // Parameter counts and the LLM's weight bytes from the same tensor list init-random writes.
  const auto specs = checkpoint_tensors(m.config());
  const layers::DecoderConfig dc = text_decoder_config(m.config());
  const std::int64_t esize = m.dtype() == at::kBFloat16 ? 2 : 4;
  double llm_matrix_params = 0;  // the linear layers every token goes through
  double llm_read_params = 0;    // what one decode step reads: all LLM weights but the embedding
  for (const auto& s : specs) {
    if (s.language_model) {
      r.llm_parameters += s.numel();
      const bool embed = s.name.find("embed_tokens") != std::string::npos;
      const bool head = s.name.find("lm_head") != std::string::npos;
      if (s.shape.size() == 2 && !embed && !head) llm_matrix_params += s.numel();
      if (!embed) llm_read_params += s.numel();
    } else {
      r.vision_parameters += s.numel();
    }
  }
  const double head_params = static_cast<double>(dc.vocab_size) * dc.hidden_size;
  if (dc.tie_word_embeddings) llm_read_params += head_params;  // lm_head is the embedding
  r.weight_bytes = (r.llm_parameters + r.vision_parameters) * esize;

  Synthetic syn = make_inputs(m, o, r);
  const std::int64_t seq = syn.inputs.input_ids.size(1);
  r.prefill_tokens = seq;
  if (o.kv_decode) {
    // Long contexts: one prefill and forks of it (per-repeat prefills would dominate the run).
    r.has_kv_decode = true;
    r.kv_decode =
        time_kv_decode(m, syn.inputs, o, static_cast<std::int64_t>(llm_read_params * esize));
    r.peak_rss_bytes = peak_rss_bytes();
    return r;
  }

  model::ForwardOptions plain;
  plain.last_logits_only = true;
  model::ForwardOptions with_methods = plain;
  with_methods.hooks = o.pipeline;
  if (o.pipeline != nullptr) o.pipeline->bind(pipeline::MethodContext(m));
  pipeline::Pipeline empty;
  model::ForwardOptions with_empty = plain;
  with_empty.hooks = &empty;
  r.has_pipeline = o.pipeline != nullptr;
  // The whole prefill (vision included), then decode steps; returns the KV bytes.
  auto prefill_decode = [&](const model::ForwardOptions& fo, std::vector<double>* prefill_runs,
                            std::vector<double>* decode_runs) {
    model::DecodeState state = m.new_state(1);
    auto t0 = Clock::now();
    model::ForwardOutput out = m.forward_cached(syn.inputs, fo, state);
    at::Tensor next = out.logits.select(1, out.logits.size(1) - 1).argmax(-1).view({1, 1});
    if (prefill_runs) prefill_runs->push_back(ms_since(t0));
    t0 = Clock::now();
    for (std::int64_t i = 0; i < o.new_tokens; ++i) {
      model::ForwardInputs step;
      step.input_ids = next;
      out = m.forward_cached(step, fo, state);
      next = out.logits.select(1, out.logits.size(1) - 1).argmax(-1).view({1, 1});
    }
    if (decode_runs && o.new_tokens > 0) decode_runs->push_back(ms_since(t0) / o.new_tokens);
    return state.cache ? state.cache->bytes_held() : std::int64_t{0};
  };
  auto timed_prefill = [&](const model::ForwardInputs& in, const model::ForwardOptions& fo,
                           std::vector<double>* runs) {
    model::DecodeState state = m.new_state(1);
    const auto t0 = Clock::now();
    (void)m.forward_cached(in, fo, state);
    if (runs) runs->push_back(ms_since(t0));
  };
  // The LLM part of a whole prefill (LlmClock), with `hooks` or plain.
  auto timed_llm = [&](model::ForwardHooks* hooks, std::vector<double>* runs) {
    LlmClock clock(hooks);
    model::ForwardOptions fo = plain;
    fo.hooks = &clock;
    model::DecodeState state = m.new_state(1);
    (void)m.forward_cached(syn.inputs, fo, state);
    if (runs) runs->push_back(ms_since(clock.start()));
  };
  // The language model's prefill inputs: the vision features of the last run given as embeds.
  model::ForwardInputs llm_inputs;
  auto one_run = [&](bool record) {
    // The vision tower alone; its output makes the prefill on the real token layout.
    llm_inputs = syn.text_only.input_ids.defined() ? syn.text_only : syn.inputs;
    r.prefill_input = syn.text_only.input_ids.defined() ? "text" : "prefill";
    if (syn.inputs.pixel_values.defined() || syn.inputs.pixel_values_videos.defined()) {
      const auto t0 = Clock::now();
      const model::MediaEmbeds media = m.embed_media(syn.inputs);
      if (record) r.vision_ms_runs.push_back(ms_since(t0));
      if (media.image_embeds.defined() || media.video_embeds.defined()) {
        llm_inputs = syn.inputs;
        llm_inputs.pixel_values = llm_inputs.pixel_values_videos = at::Tensor();
        llm_inputs.image_embeds = media.image_embeds;
        llm_inputs.video_embeds = media.video_embeds;
        r.prefill_input = "image_embeds";
      } else if (syn.run_vision) {
        const auto t1 = Clock::now();
        syn.run_vision();
        if (record) r.vision_ms_runs.back() = ms_since(t1);
      }
    }
    r.kv_bytes = prefill_decode(plain, record ? &r.end_to_end_prefill_ms_runs : nullptr,
                                record ? &r.decode_ms_runs : nullptr);
    timed_prefill(llm_inputs, plain, record ? &r.prefill_ms_runs : nullptr);
    if (o.new_tokens > 0) {
      prefill_decode(with_empty, nullptr, record ? &r.empty_pipeline_decode_ms_runs : nullptr);
    }
    if (o.pipeline) {
      PipelineTimings& p = r.pipeline;
      p.kv_bytes = prefill_decode(with_methods, record ? &p.end_to_end_prefill_ms_runs : nullptr,
                                  record ? &p.decode_ms_runs : nullptr);
      p.report_json = o.pipeline->report().to_json();
      if (r.prefill_input == "image_embeds") {
        // Vision-side methods (VisionZip) need the tower's probes, so precomputed embeds cannot
        // show their LLM speed-up: both LLM figures are timed inside whole prefills instead.
        timed_llm(nullptr, record ? &p.plain_prefill_ms_runs : nullptr);
        timed_llm(o.pipeline, record ? &p.prefill_ms_runs : nullptr);
      } else {
        timed_prefill(llm_inputs, with_methods, record ? &p.prefill_ms_runs : nullptr);
      }
    }
  };
  for (int i = 0; i < o.warmup; ++i) one_run(false);
  for (int i = 0; i < o.repeat; ++i) one_run(true);
  if (o.candidates > 1) {
    // One prefill of the language model; each repeat decodes one fork alone, then all forks
    // stacked, so both read the same prefix under the same conditions.
    CandidateTimings& c = r.candidates;
    c.candidates = o.candidates;
    generate::Session root(m);
    root.prefill(llm_inputs);
    auto decode = [&](generate::Session& s) {
      const auto t0 = Clock::now();
      at::Tensor logits = s.last_logits();
      for (std::int64_t i = 0; i < o.new_tokens; ++i) logits = s.step(logits.argmax(-1));
      return ms_since(t0) / std::max<std::int64_t>(o.new_tokens, 1);
    };
    for (int i = 0; i < o.warmup + o.repeat; ++i) {
      generate::Session one = std::move(root.fork(1)[0]);
      const double single = decode(one);
      generate::Session batch = generate::Session::stack(root.fork(o.candidates));
      const double batched = decode(batch);
      if (i >= o.warmup) {
        c.single_ms_runs.push_back(single);
        c.batch_ms_runs.push_back(batched);
      }
      const generate::SessionStats st = batch.stats();
      c.bytes_shared = st.bytes_shared;
      c.bytes_per_fork = st.bytes_own / o.candidates;
    }
    c.single_ms_per_step = median(c.single_ms_runs);
    c.batch_ms_per_step = median(c.batch_ms_runs);
    c.single_tokens_per_s = 1e3 / std::max(c.single_ms_per_step, 1e-9);
    c.batch_tokens_per_s = 1e3 * o.candidates / std::max(c.batch_ms_per_step, 1e-9);
    c.aggregate_speedup = c.batch_tokens_per_s / std::max(c.single_tokens_per_s, 1e-9);
  }
  if (o.pipeline) {
    PipelineTimings& p = r.pipeline;
    p.end_to_end_prefill_ms = median(p.end_to_end_prefill_ms_runs);
    p.prefill_ms = median(p.prefill_ms_runs);
    p.decode_ms_per_token = median(p.decode_ms_runs);
    p.end_to_end_prefill_speedup =
        median(r.end_to_end_prefill_ms_runs) / std::max(p.end_to_end_prefill_ms, 1e-9);
    p.plain_prefill_ms = p.plain_prefill_ms_runs.empty() ? median(r.prefill_ms_runs)
                                                         : median(p.plain_prefill_ms_runs);
    p.prefill_speedup = p.plain_prefill_ms / std::max(p.prefill_ms, 1e-9);
    if (p.decode_ms_per_token > 0)
      p.decode_speedup = median(r.decode_ms_runs) / p.decode_ms_per_token;
  }

  r.vision_ms = median(r.vision_ms_runs);
  r.end_to_end_prefill_ms = median(r.end_to_end_prefill_ms_runs);
  r.prefill_ms = median(r.prefill_ms_runs);
  r.prefill_tokens_per_s = seq / (r.prefill_ms * 1e-3);
  r.decode_ms_per_token = median(r.decode_ms_runs);
  r.decode_tokens_per_s = r.decode_ms_per_token > 0 ? 1e3 / r.decode_ms_per_token : 0;
  r.empty_pipeline_decode_ms_per_token = median(r.empty_pipeline_decode_ms_runs);

  // FLOPs of the LLM prefill: every token through every linear layer, logits for the last
  // token only, and dense attention (scores and probs.v over the full S x S square, as the
  // implementation computes it under a causal mask).
  const double S = static_cast<double>(seq);
  const double q_dim = static_cast<double>(dc.num_heads) * dc.head_dim;
  r.prefill_flops =
      2.0 * llm_matrix_params * S + 2.0 * head_params + 4.0 * dc.num_layers * S * S * q_dim;
  // Bytes per decode step: the LLM weights (not the embedding table) and the KV cache read,
  // with the cache at its mean length over the steps.
  const double kv_dim = static_cast<double>(dc.num_kv_heads) * dc.head_dim;
  const double mean_len = S + (o.new_tokens + 1) / 2.0;
  r.decode_bytes_per_token =
      llm_read_params * esize + 2.0 * dc.num_layers * kv_dim * mean_len * esize;

  if (o.machine_limits) {
    const std::int64_t h = dc.hidden_size, i = dc.intermediate_size;
    const auto q = static_cast<std::int64_t>(q_dim), kv = static_cast<std::int64_t>(kv_dim);
    std::vector<GemmShape> shapes{{"q_proj", seq, h, q},
                                  {"k_proj", seq, h, kv},
                                  {"o_proj", seq, q, h},
                                  {"gate_proj", seq, h, i},
                                  {"down_proj", seq, i, h}};
    // Per layer: q, k and v (k's shape), o, gate and up (gate's shape), down.
    const double per_layer[] = {1, 2, 1, 2, 1};
    r.gemm = measure_gemm(shapes, m.dtype(), 3);
    double mix_flops = 0, mix_ms = 0;
    for (std::size_t k = 0; k < shapes.size(); ++k) {
      r.gemm_peak_gflops = std::max(r.gemm_peak_gflops, r.gemm[k].gflops);
      mix_flops += per_layer[k] * shapes[k].flops();
      mix_ms += per_layer[k] * r.gemm[k].ms;
    }
    r.gemm_mix_gflops = mix_flops / (mix_ms * 1e-3) / 1e9;
    // Decode's matrix-vector products, for reference (not part of the peak): at::linear and the
    // GEMV kernel that decode uses.
    const auto gemv = measure_gemm({{"gate_proj m=1", 1, h, i}}, m.dtype(), 5);
    r.gemm.insert(r.gemm.end(), gemv.begin(), gemv.end());
    const auto kernel = measure_gemv_kernel({"gate_proj m=1 kernel", 1, h, i}, m.dtype(), 5);
    if (kernel.ms > 0) r.gemm.push_back(kernel);
    r.mem_bandwidth_gbs = measure_copy_bandwidth();
    const double achieved = r.prefill_flops / (r.prefill_ms * 1e-3) / 1e9;
    r.prefill_flops_utilization = achieved / std::max(r.gemm_peak_gflops, 1e-9);
    r.prefill_flops_utilization_mix = achieved / std::max(r.gemm_mix_gflops, 1e-9);
    if (r.decode_ms_per_token > 0) {
      r.decode_bandwidth_utilization = r.decode_bytes_per_token / (r.decode_ms_per_token * 1e-3) /
                                       1e9 / std::max(r.mem_bandwidth_gbs, 1e-9);
    }
  }
  if (o.profile) {
    r.profile = profile_layer(dc, m.dtype(), "prefill", seq, seq, std::max(o.repeat, 2));
    const auto dec =
        profile_layer(dc, m.dtype(), "decode", 1, seq + o.new_tokens, std::max(o.repeat, 5));
    r.profile.insert(r.profile.end(), dec.begin(), dec.end());
  }
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

std::string to_json(const BenchResult& r) {
  using nlohmann::json;
  json j;
  j["architecture"] = r.architecture;
  j["family"] = r.family;
  j["dtype"] = r.dtype;
  j["weights"] = r.weights;
  j["threads"] = r.threads;
  j["visual_tokens"] = r.visual_tokens;
  j["text_tokens"] = r.text_tokens;
  j["prefill_tokens"] = r.prefill_tokens;
  j["new_tokens"] = r.new_tokens;
  j["vision_patches"] = r.vision_patches;
  j["image_grid_thw"] = r.image_grid_thw;
  j["image_size"] = {r.image_width, r.image_height};
  j["llm_parameters"] = r.llm_parameters;
  j["vision_parameters"] = r.vision_parameters;
  j["weight_bytes"] = r.weight_bytes;
  j["init_ms"] = r.init_ms;
  j["load_ms"] = r.load_ms;
  j["vision_ms"] = r.vision_ms;
  j["prefill_ms"] = r.prefill_ms;
  j["prefill_input"] = r.prefill_input;
  j["prefill_tokens_per_s"] = r.prefill_tokens_per_s;
  j["end_to_end_prefill_ms"] = r.end_to_end_prefill_ms;
  j["decode_ms_per_token"] = r.decode_ms_per_token;
  j["decode_tokens_per_s"] = r.decode_tokens_per_s;
  j["vision_ms_runs"] = r.vision_ms_runs;
  j["prefill_ms_runs"] = r.prefill_ms_runs;
  j["end_to_end_prefill_ms_runs"] = r.end_to_end_prefill_ms_runs;
  j["decode_ms_runs"] = r.decode_ms_runs;
  j["empty_pipeline_decode_ms_per_token"] = r.empty_pipeline_decode_ms_per_token;
  j["empty_pipeline_decode_ms_runs"] = r.empty_pipeline_decode_ms_runs;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["kv_bytes"] = r.kv_bytes;
  j["prefill_flops"] = r.prefill_flops;
  j["decode_bytes_per_token"] = r.decode_bytes_per_token;
  j["gemm_peak_gflops"] = r.gemm_peak_gflops;
  j["gemm_mix_gflops"] = r.gemm_mix_gflops;
  j["prefill_flops_utilization_mix"] = r.prefill_flops_utilization_mix;
  j["mem_bandwidth_gbs"] = r.mem_bandwidth_gbs;
  j["prefill_flops_utilization"] = r.prefill_flops_utilization;
  j["decode_bandwidth_utilization"] = r.decode_bandwidth_utilization;
  json gemm = json::array();
  for (const auto& g : r.gemm) {
    gemm.push_back({{"name", g.shape.name},
                    {"m", g.shape.m},
                    {"k", g.shape.k},
                    {"n", g.shape.n},
                    {"ms", g.ms},
                    {"gflops", g.gflops}});
  }
  j["gemm"] = gemm;
  if (!r.profile.empty()) {
    json p = json::array();
    for (const auto& op : r.profile) {
      p.push_back({{"phase", op.phase}, {"op", op.op}, {"ms_per_layer", op.ms}});
    }
    j["profile"] = p;
  }
  if (r.has_pipeline) {
    const PipelineTimings& p = r.pipeline;
    j["pipeline"] = {{"prefill_ms", p.prefill_ms},
                     {"end_to_end_prefill_ms", p.end_to_end_prefill_ms},
                     {"decode_ms_per_token", p.decode_ms_per_token},
                     {"prefill_ms_runs", p.prefill_ms_runs},
                     {"plain_prefill_ms", p.plain_prefill_ms},
                     {"plain_prefill_ms_runs", p.plain_prefill_ms_runs},
                     {"end_to_end_prefill_ms_runs", p.end_to_end_prefill_ms_runs},
                     {"decode_ms_runs", p.decode_ms_runs},
                     {"prefill_speedup", p.prefill_speedup},
                     {"end_to_end_prefill_speedup", p.end_to_end_prefill_speedup},
                     {"decode_speedup", p.decode_speedup},
                     {"kv_bytes", p.kv_bytes},
                     {"report", json::parse(p.report_json)}};
  }
  if (r.has_kv_decode) {
    const KvDecodeTimings& k = r.kv_decode;
    j["kv_decode"] = {{"context", k.context},
                      {"prefill_ms", k.prefill_ms},
                      {"dense_ms_per_token", k.dense_ms_per_token},
                      {"method_ms_per_token", k.method_ms_per_token},
                      {"dense_ms_runs", k.dense_ms_runs},
                      {"method_ms_runs", k.method_ms_runs},
                      {"dense_tokens_per_s", k.dense_tokens_per_s},
                      {"method_tokens_per_s", k.method_tokens_per_s},
                      {"speedup", k.speedup},
                      {"ideal_speedup", k.ideal_speedup},
                      {"dense_attention_ms", k.dense_attention_ms},
                      {"method_attention_ms", k.method_attention_ms},
                      {"dense_attention_ms_runs", k.dense_attention_ms_runs},
                      {"method_attention_ms_runs", k.method_attention_ms_runs},
                      {"attention_ratio", k.attention_ratio},
                      {"bytes_full", k.bytes_full},
                      {"bytes_held", k.bytes_held},
                      {"bytes_ratio", k.bytes_ratio},
                      {"rss_dense_bytes", k.rss_dense_bytes},
                      {"rss_compressed_bytes", k.rss_compressed_bytes},
                      {"kv", json::parse(k.kv_report)},
                      {"report", json::parse(k.report_json)}};
  }
  if (r.candidates.candidates > 1) {
    const CandidateTimings& c = r.candidates;
    j["candidates"] = {{"candidates", c.candidates},
                       {"single_ms_per_step", c.single_ms_per_step},
                       {"batch_ms_per_step", c.batch_ms_per_step},
                       {"single_ms_runs", c.single_ms_runs},
                       {"batch_ms_runs", c.batch_ms_runs},
                       {"single_tokens_per_s", c.single_tokens_per_s},
                       {"batch_tokens_per_s", c.batch_tokens_per_s},
                       {"aggregate_speedup", c.aggregate_speedup},
                       {"bytes_shared", c.bytes_shared},
                       {"bytes_per_fork", c.bytes_per_fork}};
  }
  const auto s = core::system_info();
  j["system"] = json::parse(core::to_json(s));
  return j.dump();
}

std::string to_text(const BenchResult& r) {
  std::string out;
  char line[256];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof(line), fmt, args...);
    out += line;
  };
  add("model            %s (%s), %s, %d threads, %s weights\n", r.architecture.c_str(),
      r.family.c_str(), r.dtype.c_str(), r.threads, r.weights.empty() ? "?" : r.weights.c_str());
  add("parameters       LLM %.3f B, vision %.3f B (%.2f GB of weights)\n", r.llm_parameters / 1e9,
      r.vision_parameters / 1e9, r.weight_bytes / 1e9);
  add("shape            %lld visual + %lld text = %lld prefill tokens, %lld new tokens\n",
      static_cast<long long>(r.visual_tokens), static_cast<long long>(r.text_tokens),
      static_cast<long long>(r.prefill_tokens), static_cast<long long>(r.new_tokens));
  if (r.image_width > 0) {
    add("image            %lldx%lld, %lld patches\n", static_cast<long long>(r.image_width),
        static_cast<long long>(r.image_height), static_cast<long long>(r.vision_patches));
  }
  if (r.init_ms > 0) add("init-random      %.0f ms\n", r.init_ms);
  add("load             %.0f ms\n", r.load_ms);
  if (r.has_kv_decode) {
    const KvDecodeTimings& k = r.kv_decode;
    add("kv prefill       %.1f ms for a %lld-token context (once; forked into dense and "
        "compressed)\n",
        k.prefill_ms, static_cast<long long>(k.context));
    add("kv decode        dense %.1f ms/token (%.2f tokens/s), methods %.1f ms/token (%.2f "
        "tokens/s): %.2fx (bytes-model ideal %.2fx)\n",
        k.dense_ms_per_token, k.dense_tokens_per_s, k.method_ms_per_token, k.method_tokens_per_s,
        k.speedup, k.ideal_speedup);
    add("kv attention     dense %.2f ms/token, methods %.2f ms/token over all layers: %.3fx\n",
        k.dense_attention_ms, k.method_attention_ms, k.attention_ratio);
    add("kv bytes         %.1f MB held of %.1f MB full: %.3fx; resident %.1f MB with the dense "
        "cache, %.1f MB with the compressed one (%.2fx of the bytes removed)\n",
        k.bytes_held / 1e6, k.bytes_full / 1e6, k.bytes_ratio, k.rss_dense_bytes / 1e6,
        k.rss_compressed_bytes / 1e6,
        static_cast<double>(k.rss_dense_bytes - k.rss_compressed_bytes) /
            std::max<double>(static_cast<double>(k.bytes_full - k.bytes_held), 1.0));
    out += "pipeline report  " + k.report_json + "\n";
    return out;
  }
  add("vision           %.1f ms\n", r.vision_ms);
  add("prefill          %.1f ms (%.1f tokens/s, input: %s); end to end with vision %.1f ms\n",
      r.prefill_ms, r.prefill_tokens_per_s, r.prefill_input.c_str(), r.end_to_end_prefill_ms);
  add("decode           %.1f ms/token (%.2f tokens/s)\n", r.decode_ms_per_token,
      r.decode_tokens_per_s);
  if (r.empty_pipeline_decode_ms_per_token > 0) {
    add("empty pipeline   decode %.1f ms/token (%.3fx of none; for information)\n",
        r.empty_pipeline_decode_ms_per_token,
        r.empty_pipeline_decode_ms_per_token / std::max(r.decode_ms_per_token, 1e-9));
  }
  add("memory           peak RSS %.2f GB, KV cache %.1f MB\n", r.peak_rss_bytes / 1e9,
      r.kv_bytes / 1e6);
  for (const auto& g : r.gemm) {
    add("gemm %-12s [%lld,%lld]x[%lld,%lld]: %.1f GFLOP/s\n", g.shape.name.c_str(),
        static_cast<long long>(g.shape.m), static_cast<long long>(g.shape.k),
        static_cast<long long>(g.shape.k), static_cast<long long>(g.shape.n), g.gflops);
  }
  if (r.gemm_peak_gflops > 0) {
    add("machine          GEMM peak %.1f GFLOP/s (layer mix %.1f), copy bandwidth %.1f GB/s\n",
        r.gemm_peak_gflops, r.gemm_mix_gflops, r.mem_bandwidth_gbs);
    add("utilisation      prefill %.1f%% of GEMM peak, %.1f%% of the mix (%.2f TFLOP), decode "
        "%.1f%% of bandwidth (%.2f GB/token)\n",
        100 * r.prefill_flops_utilization, 100 * r.prefill_flops_utilization_mix,
        r.prefill_flops / 1e12, 100 * r.decode_bandwidth_utilization,
        r.decode_bytes_per_token / 1e9);
  }
  if (r.has_pipeline) {
    const PipelineTimings& p = r.pipeline;
    add("pipeline         prefill %.1f ms against %.1f (%.2fx), end to end %.1f ms (%.2fx), "
        "decode %.1f ms/token (%.2fx)\n",
        p.prefill_ms, p.plain_prefill_ms, p.prefill_speedup, p.end_to_end_prefill_ms,
        p.end_to_end_prefill_speedup, p.decode_ms_per_token, p.decode_speedup);
    out += "pipeline report  " + p.report_json + "\n";
  }
  if (r.candidates.candidates > 1) {
    const CandidateTimings& c = r.candidates;
    add("candidates       %lld forks of one prefill: %.1f ms/step for 1 (%.2f tokens/s), %.1f "
        "ms/step for %lld (%.2f tokens/s): %.2fx aggregate; KV %.1f MB shared, %.2f MB per fork\n",
        static_cast<long long>(c.candidates), c.single_ms_per_step, c.single_tokens_per_s,
        c.batch_ms_per_step, static_cast<long long>(c.candidates), c.batch_tokens_per_s,
        c.aggregate_speedup, c.bytes_shared / 1e6, c.bytes_per_fork / 1e6);
  }
  for (const auto& p : r.profile) {
    add("profile %-8s %-28s %9.3f ms/layer\n", p.phase.c_str(), p.op.c_str(), p.ms);
  }
  return out;
}

}  // namespace glimpse::bench
