#include "glimpse/methods/inspect/logit_lens.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "glimpse/text/tokenizer.h"

namespace glimpse::methods::inspect {

at::Tensor logit_lens_logits(const model::Model& model, const model::ForwardOutput& out,
                             std::int64_t position) {
  const auto& hs = out.hidden_states;
  if (hs.size() < 2 || !out.last_layer_output_prenorm.defined()) {
    throw InputError("logit lens: the forward ran without output_hidden_states");
  }
  const std::int64_t s = hs.back().size(1);
  if (position < 0 || position >= s) {
    throw InputError("logit lens: position " + std::to_string(position) + " outside [0, " +
                     std::to_string(s) + ")");
  }
  // Hidden states 1..L-1 are the un-normed residual stream; hidden_states[L] is already normed
  // (the reference appends it after self.norm), so the last layer goes through the norm from its
  // pre-norm output instead (attention.md, "Hidden-state readout").
  std::vector<at::Tensor> rows;
  for (std::size_t i = 1; i + 1 < hs.size(); ++i) {
    if (hs[i].size(1) != s) {
      throw UnsupportedError("logit lens: hidden state " + std::to_string(i) +
                             " has a different length (tokens were pruned)");
    }
    rows.push_back(hs[i][0][position]);
  }
  rows.push_back(out.last_layer_output_prenorm[0][position]);
  const at::Tensor h = at::stack(rows, 0);  // [L, H]
  return model.logits_from_hidden(h, /*apply_norm=*/true).to(at::kFloat);
}

std::vector<LensLayer> logit_lens(const model::Model& model, const model::ForwardOutput& out,
                                  std::int64_t position, std::int64_t top_k) {
  if (top_k <= 0) throw InputError("logit lens: top-k must be positive");
  const at::Tensor logits = logit_lens_logits(model, out, position);
  const at::Tensor probs = at::softmax(logits, -1);
  const std::int64_t k = std::min(top_k, logits.size(1));
  const auto [values, ids] = at::topk(logits, k, -1);
  const at::Tensor p = probs.gather(1, ids);
  std::vector<LensLayer> layers;
  for (std::int64_t l = 0; l < logits.size(0); ++l) {
    LensLayer layer;
    layer.hidden_state = l + 1;
    for (std::int64_t j = 0; j < k; ++j) {
      layer.top.push_back(
          {ids[l][j].item<std::int64_t>(), p[l][j].item<double>(), values[l][j].item<double>()});
    }
    layers.push_back(std::move(layer));
  }
  return layers;
}

std::string logit_lens_json(const std::vector<LensLayer>& layers, std::int64_t position,
                            const text::Tokenizer* tokenizer) {
  nlohmann::json j = {{"position", position}, {"layers", nlohmann::json::array()}};
  for (const auto& layer : layers) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& t : layer.top) {
      nlohmann::json e = {{"id", t.id}, {"prob", t.prob}, {"logit", t.logit}};
      if (tokenizer != nullptr) {
        // Invalid UTF-8 pieces (a byte of a longer character) are replaced by the dump below.
        e["token"] = tokenizer->decode({static_cast<text::TokenId>(t.id)});
        // The vocabulary entry too: a byte-level piece of a longer character decodes to U+FFFD.
        if (const auto piece = tokenizer->id_to_token(t.id)) e["piece"] = *piece;
      }
      top.push_back(std::move(e));
    }
    j["layers"].push_back(
        {{"hidden_state", layer.hidden_state}, {"layer", layer.hidden_state - 1}, {"top", top}});
  }
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::pair<std::string, at::Tensor>> hidden_state_tensors(
    const model::ForwardOutput& out, const std::vector<std::int64_t>& layers) {
  const auto& hs = out.hidden_states;
  if (hs.empty()) throw InputError("hidden states: the forward ran without output_hidden_states");
  const auto num_layers = static_cast<std::int64_t>(hs.size()) - 1;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto l : layers) {
    if (l < 0 || l >= num_layers) {
      throw InputError("hidden states: layer " + std::to_string(l) + " out of range [0, " +
                       std::to_string(num_layers) + ")");
    }
    tensors.emplace_back("hidden_states." + std::to_string(l + 1),
                         hs[static_cast<std::size_t>(l + 1)].to(at::kFloat));
    if (l == num_layers - 1 && out.last_layer_output_prenorm.defined()) {
      tensors.emplace_back("last_layer_output_prenorm",
                           out.last_layer_output_prenorm.to(at::kFloat));
    }
  }
  return tensors;
}

}  // namespace glimpse::methods::inspect
