#pragma once

// Fixture inputs for the methods' tests: a case by name, and a row of a left-padded batch as its
// own input ("each sequence gets what it gets alone").

#include <ATen/ATen.h>

#include <string>

#include "glimpse/model/model.h"
#include "test_util.h"

namespace glimpse::test {

// ../shared/fixtures/<model>/cases/<name>.inputs.safetensors
inline model::ForwardInputs load_case(const std::string& model, const std::string& name) {
  return model::read_forward_inputs(fixtures_dir() + "/" + model + "/cases/" + name +
                                    ".inputs.safetensors");
}

// Row `b` of a left-padded batch alone: its tokens without padding and its own media (the
// fixtures' batches have one image: it belongs to the row that has its tokens).
inline model::ForwardInputs row_alone(const model::ForwardInputs& in, std::int64_t b,
                                      std::int64_t image_token) {
  model::ForwardInputs one;
  const at::Tensor keep = in.attention_mask[b].nonzero().view({-1});
  one.input_ids = in.input_ids[b].index_select(0, keep).unsqueeze(0);
  one.attention_mask = at::ones_like(one.input_ids);
  if (one.input_ids.eq(image_token).any().item<bool>()) {
    one.pixel_values = in.pixel_values;
    one.image_grid_thw = in.image_grid_thw;
  }
  return one;
}

}  // namespace glimpse::test
