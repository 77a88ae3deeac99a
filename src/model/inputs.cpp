#include "model/inputs.h"

#include <ATen/ATen.h>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "glimpse/core/tensor.h"

namespace glimpse::model {
namespace {

at::Tensor as_ids(const at::Tensor& t, const char* name) {
  if (t.dim() != 2) {
    throw InputError(std::string(name) + ": expected 2 dimensions [batch, sequence], found " +
                     std::to_string(t.dim()));
  }
  if (at::isFloatingType(t.scalar_type())) {
    throw InputError(std::string(name) + ": expected an integer tensor");
  }
  return t.to(at::kLong).contiguous();
}

}  // namespace

ForwardInputs checked_text_inputs(const ForwardInputs& raw, std::int64_t vocab) {
  if (!raw.input_ids.defined()) throw InputError("input_ids: missing");
  ForwardInputs in = raw;
  in.input_ids = as_ids(raw.input_ids, "input_ids");
  const std::int64_t b = in.input_ids.size(0), s = in.input_ids.size(1);
  if (b == 0 || s == 0) throw InputError("input_ids: empty");
  const std::int64_t lo = in.input_ids.min().item<std::int64_t>();
  const std::int64_t hi = in.input_ids.max().item<std::int64_t>();
  if (lo < 0 || hi >= vocab) {
    throw InputError("input_ids: token id " + std::to_string(lo < 0 ? lo : hi) +
                     " outside the vocabulary [0, " + std::to_string(vocab) + ")");
  }
  if (in.attention_mask.defined()) {
    in.attention_mask = as_ids(raw.attention_mask, "attention_mask");
    if (in.attention_mask.sizes() != in.input_ids.sizes()) {
      throw InputError("attention_mask: shape " + c10::str(in.attention_mask.sizes()) +
                       " differs from input_ids " + c10::str(in.input_ids.sizes()));
    }
    if (!in.attention_mask.eq(0).logical_or(in.attention_mask.eq(1)).all().item<bool>()) {
      throw InputError("attention_mask: values must be 0 or 1");
    }
  } else {
    in.attention_mask = at::ones({b, s}, at::TensorOptions().dtype(at::kLong));
  }
  return in;
}

namespace {

// The reference-named tensors of ForwardInputs, in the order the reference forward lists them.
const std::pair<const char*, at::Tensor ForwardInputs::*> kNamedInputs[] = {
    {"input_ids", &ForwardInputs::input_ids},
    {"attention_mask", &ForwardInputs::attention_mask},
    {"pixel_values", &ForwardInputs::pixel_values},
    {"image_grid_thw", &ForwardInputs::image_grid_thw},
    {"pixel_values_videos", &ForwardInputs::pixel_values_videos},
    {"video_grid_thw", &ForwardInputs::video_grid_thw},
    {"second_per_grid_ts", &ForwardInputs::second_per_grid_ts},
    {"image_embeds", &ForwardInputs::image_embeds},
    {"video_embeds", &ForwardInputs::video_embeds},
};

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> named_tensors(const ForwardInputs& inputs) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, member] : kNamedInputs) {
    if ((inputs.*member).defined()) out.emplace_back(name, inputs.*member);
  }
  return out;
}

ForwardInputs read_forward_inputs(const std::string& path) {
  const auto file = core::SafetensorsFile::open(path);
  if (file.find("input_ids") == nullptr) throw InputError(path + ": missing tensor 'input_ids'");
  ForwardInputs in;
  for (const auto& t : file.tensors()) {
    bool known = false;
    for (const auto& [name, member] : kNamedInputs) {
      if (t.name == name) {
        in.*member = core::load_tensor(file, t.name);
        known = true;
      }
    }
    // position_ids and rope_deltas are outputs of the reference processor; glimpse recomputes them.
    if (!known && t.name != "position_ids" && t.name != "rope_deltas") {
      GLIMPSE_LOG(Warn) << path << ": ignoring tensor '" << t.name << "'";
    }
  }
  return in;
}

void check_finite(const at::Tensor& t, const std::string& name) {
  if (!at::isFloatingType(t.scalar_type())) {
    throw InputError(name + ": expected floating-point values, found " +
                     std::string(c10::toString(t.scalar_type())));
  }
  if (!at::isfinite(t).all().item<bool>()) {
    throw InputError(name + ": expected finite values, found NaN or infinity");
  }
}

void check_autograd(const ForwardOptions& options, const DecodeState* state) {
  if (options.autograd && state != nullptr) {
    throw UnsupportedError(
        "ForwardOptions::autograd: the autograd path runs forward passes without a cache "
        "(Model::forward), not forward_cached");
  }
}

}  // namespace glimpse::model
