#include "models/llama/modeling.h"

#include <filesystem>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/model/registry.h"
#include "kernels/ops.h"
#include "layers/weights.h"
#include "model/inputs.h"

namespace glimpse::models::llama {
namespace {

std::int64_t positive(const core::Config& c, const char* key, std::int64_t fallback) {
  const std::int64_t v = c.get_int(key, fallback);
  if (v <= 0) c.fail(key, "expected a positive integer, found " + std::to_string(v));
  return v;
}

}  // namespace

layers::DecoderConfig decoder_config(const core::Config& t, bool qwen2) {
  layers::DecoderConfig d;
  // LlamaConfig defaults (configuration_llama.py).
  d.vocab_size = positive(t, "vocab_size", 32000);
  d.hidden_size = positive(t, "hidden_size", 4096);
  d.intermediate_size = positive(t, "intermediate_size", 11008);
  d.num_layers = positive(t, "num_hidden_layers", 32);
  d.num_heads = positive(t, "num_attention_heads", 32);
  d.num_kv_heads = positive(t, "num_key_value_heads", d.num_heads);
  d.head_dim = positive(t, "head_dim", d.hidden_size / d.num_heads);
  if (!t.has("head_dim") && d.hidden_size % d.num_heads != 0) {
    t.fail("num_attention_heads", "does not divide hidden_size");
  }
  if (d.num_heads % d.num_kv_heads != 0) {
    t.fail("num_key_value_heads", "does not divide num_attention_heads");
  }
  if (d.head_dim % 2 != 0) t.fail("head_dim", "expected an even number");
  d.rms_norm_eps = t.get_float("rms_norm_eps", 1e-6);
  d.max_position_embeddings = positive(t, "max_position_embeddings", 2048);
  d.act = layers::parse_activation(t.get_string("hidden_act", "silu"), t.source() + ": hidden_act");
  if (qwen2) {
    d.qkv_bias = true;
  } else {
    d.qkv_bias = d.o_bias = t.get_bool("attention_bias", false);
    d.mlp_bias = t.get_bool("mlp_bias", false);
  }
  d.tie_word_embeddings = t.get_bool("tie_word_embeddings", false);
  return d;
}

CausalLM::CausalLM(core::Config raw, const core::Config& text, bool qwen2,
                   layers::WeightLoader& weights, const layers::DecoderConfig& decoder,
                   c10::ScalarType dtype)
    : raw_config_(std::move(raw)),
      dtype_(dtype),
      rope_(layers::RopeConfig::from_config(text, decoder.head_dim)) {
  (void)qwen2;
  const auto archs = raw_config_.get_string_list("architectures", {});
  architecture_ = archs.empty() ? raw_config_.get_string("model_type", "") : archs[0];
  if (dtype_ != at::kFloat && dtype_ != at::kBFloat16) {
    throw UnsupportedError("compute dtype must be f32 or bf16");
  }
  decoder_ = std::make_unique<layers::Decoder>(weights, decoder);
}

std::unique_ptr<model::Model> CausalLM::load(const std::string& dir,
                                             const model::LoadOptions& options) {
  auto raw = core::Config::load((std::filesystem::path(dir) / "config.json").string());
  const bool qwen2 = raw.get_string("model_type", "") == "qwen2";
  const auto decoder = decoder_config(raw, qwen2);
  layers::WeightLoader weights(core::Checkpoint::open(dir), options.dtype,
                               options.weights == model::WeightMemory::Resident);
  auto model = std::make_unique<CausalLM>(raw, raw, qwen2, weights, decoder, options.dtype);
  model->weights_ = weights.bound();
  for (const auto& name : weights.unused()) {
    if (name != "lm_head.weight") {
      GLIMPSE_LOG(Warn) << weights.path() << ": unused tensor '" << name << "'";
    }
  }
  return model;
}

model::TokenLayout CausalLM::token_layout(const model::ForwardInputs& in,
                                          std::int64_t first) const {
  const std::int64_t b = in.input_ids.size(0), s = in.input_ids.size(1);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  model::TokenLayout layout;
  layout.modality = at::zeros({b, s}, at::TensorOptions().dtype(at::kChar));
  layout.media_index = at::full({b, s}, -1, i64);
  layout.grid = at::full({b, s, 3}, -1, i64);
  layout.original_index = at::arange(first, first + s, i64).view({1, s}).repeat({b, 1});
  return layout;
}

at::Tensor CausalLM::embed(const model::ForwardInputs& inputs, const model::TokenLayout&,
                           model::ForwardHooks*, layers::PromptCut&) const {
  for (const auto& [name, t] : model::named_tensors(inputs)) {
    if (name != "input_ids" && name != "attention_mask") {
      throw InputError(name + ": " + architecture_ + " is a text-only model (no images or videos)");
    }
  }
  return decoder_->embed(inputs.input_ids);
}

model::ForwardOutput CausalLM::run(const model::ForwardInputs& raw,
                                   const model::ForwardOptions& options,
                                   model::DecodeState* state) {
  const model::ForwardInputs in = model::checked_text_inputs(raw, decoder_->config().vocab_size);
  model::check_autograd(options, state);
  const kernels::ReferenceOps reference(options.autograd);
  const std::int64_t b = in.input_ids.size(0), s = in.input_ids.size(1);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const bool prefill = state == nullptr || state->past_length() == 0;
  const bool media = in.pixel_values.defined() || in.pixel_values_videos.defined() ||
                     in.image_embeds.defined() || in.video_embeds.defined();
  model::ForwardOutput out;
  std::int64_t first = 0;  // original index of the first new token
  // Generation counts positions over real tokens only (attention_mask.cumsum - 1, padding -> 1).
  const at::Tensor counted =
      (in.attention_mask.cumsum(1) - 1).masked_fill(in.attention_mask.eq(0), 1);
  if (state == nullptr) {
    // A plain forward uses cache positions (arange), as the reference's forward does.
    out.position_ids = at::arange(s, i64).view({1, s}).expand({b, s});
  } else if (prefill) {
    out.position_ids = counted;
    state->next_position = in.attention_mask.sum(1);
  } else {
    if (b != state->batch()) {
      throw InputError("input_ids: batch of " + std::to_string(b) + " differs from the state's " +
                       std::to_string(state->batch()));
    }
    first = state->past_length();
    out.position_ids =
        (counted + state->next_position.view({b, 1})).masked_fill_(in.attention_mask.eq(0), 1);
    state->next_position = state->next_position + in.attention_mask.sum(1);
  }
  model::TokenLayout layout = token_layout(in, first);
  layout.positions = out.position_ids.unsqueeze(0);
  layers::PromptCut cut;  // image tokens the vision sites dropped
  at::Tensor x =
      prefill || media ? embed(in, layout, options.hooks, cut) : decoder_->embed(in.input_ids);
  at::Tensor attention_mask = in.attention_mask;
  if (cut.any()) {
    const at::Tensor removed = layers::apply_cut(cut, x, attention_mask, layout);
    out.position_ids = layout.positions[0];
    if (state != nullptr && cut.positions == model::PositionPolicy::Compact)
      state->next_position = state->next_position - removed;
  }
  const auto [cos, sin] = layers::rope_cos_sin(rope_, out.position_ids, dtype_);
  const layers::RopeFn rope = [this](const at::Tensor& positions) {
    return layers::rope_cos_sin(rope_, positions[0], dtype_);
  };
  return decoder_->forward(x, cos, sin, attention_mask, std::move(layout), options, state, prefill,
                           std::move(out), rope);
}

model::ForwardOutput CausalLM::forward(const model::ForwardInputs& inputs,
                                       const model::ForwardOptions& options) {
  return run(inputs, options, nullptr);
}

model::ForwardOutput CausalLM::forward_cached(const model::ForwardInputs& inputs,
                                              const model::ForwardOptions& options,
                                              model::DecodeState& state) {
  if (!state.cache) throw InputError("decoding state has no cache (use Model::new_state)");
  return run(inputs, options, &state);
}

model::DecodeState CausalLM::new_state(std::int64_t) const {
  model::DecodeState state;
  state.cache = std::make_unique<model::DenseKVCache>(num_layers());
  return state;
}

void register_models(model::ModelRegistry& registry) {
  for (const char* key : {"LlamaForCausalLM", "Qwen2ForCausalLM", "llama", "qwen2"}) {
    registry.add(key, &CausalLM::load);
  }
}

}  // namespace glimpse::models::llama
