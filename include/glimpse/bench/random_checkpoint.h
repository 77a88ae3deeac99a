#pragma once

// Checkpoint folders with deterministic random weights, built from a config.json alone: the same
// tensors (names, shapes) the loaders in src/models/* read, plus the files the other subcommands
// need (generation, preprocessor, chat template, a small byte-level BPE tokenizer). For
// benchmarks at real shapes and for tests, without downloading a model.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "glimpse/core/config.h"

namespace glimpse::bench {

// The config.json key that marks a checkpoint written by write_random_checkpoint.
inline constexpr const char* kRandomWeightsKey = "glimpse_random_weights";

// Model families init-random knows, chosen by `architectures[0]`, else `model_type`.
enum class Family { Qwen2VL, Qwen25VL, Llava, Llama, Qwen2 };

std::string family_name(Family family);
// Throws ConfigError naming `architectures`/`model_type` for an unknown model.
Family detect_family(const core::Config& config);

struct TensorSpec {
  // Normal: N(0, 0.02) (matrices, embeddings); Gain: 1 + N(0, 0.02) (norm weights);
  // Bias: N(0, 0.01) (biases, small so that deep stacks stay finite).
  enum class Init { Normal, Gain, Bias };
  std::string name;
  std::vector<std::int64_t> shape;
  Init init = Init::Normal;
  bool language_model = false;  // part of the LLM (counted for FLOPs and decode bytes)
  std::int64_t numel() const;
};

// Every tensor the architecture of `config` needs, in state-dict order, with the on-disk names of
// the published checkpoints. Parses with the loaders' own config readers, so that a config they
// reject is rejected here with the same ConfigError.
std::vector<TensorSpec> checkpoint_tensors(const core::Config& config);

struct RandomCheckpointOptions {
  std::uint64_t seed = 0;
  c10::ScalarType dtype = c10::ScalarType::Float;  // Float or BFloat16
  // Above this many bytes of tensor data, write model-0000i-of-0000n.safetensors shards of at
  // most this size (a tensor larger than it gets a shard of its own) plus the index. Generation
  // holds one shard in memory at a time.
  std::int64_t max_shard_bytes = 4'000'000'000;
};

struct RandomCheckpointInfo {
  Family family = Family::Qwen2VL;
  std::int64_t tensors = 0;
  std::int64_t parameters = 0;
  std::int64_t bytes = 0;
  std::vector<std::string> files;  // safetensors files written, relative to the folder
};

// Writes a complete checkpoint folder into `out_dir` (created when absent): config.json,
// model.safetensors (or shards + model.safetensors.index.json), generation_config.json,
// preprocessor_config.json (vision models), chat_template.json, tokenizer.json and
// tokenizer_config.json. Weights depend only on the seed and the tensor name.
RandomCheckpointInfo write_random_checkpoint(const core::Config& config, const std::string& out_dir,
                                             const RandomCheckpointOptions& options = {});

// The one tensor `spec` generated with `seed`, in `dtype` (what write_random_checkpoint stores).
at::Tensor random_tensor(const TensorSpec& spec, std::uint64_t seed, c10::ScalarType dtype);

}  // namespace glimpse::bench
