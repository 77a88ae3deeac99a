#pragma once

// Binds weights to layers by their state-dict names, converting to the compute dtype and checking
// shapes against the config. Tensors are either copied into a WeightArena (resident) or used in
// place from the file mapping when the stored dtype already matches (zero-copy).

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/weight_arena.h"
#include "glimpse/core/safetensors.h"

namespace glimpse::layers {

class WeightLoader {
 public:
  // `aliases` are (prefix, replacement) pairs tried when a canonical name is absent, e.g.
  // ("model.", "model.language_model.") for checkpoints saved by newer transformers.
  // `resident`: copy every tensor into anonymous huge-page memory (model::WeightMemory).
  WeightLoader(core::Checkpoint checkpoint, c10::ScalarType dtype, bool resident,
               std::vector<std::pair<std::string, std::string>> aliases = {});

  bool has(const std::string& name) const;
  // The tensor in the compute dtype. Throws FormatError naming the tensor when it is absent or
  // its shape differs from `shape` (when given).
  at::Tensor get(const std::string& name, at::IntArrayRef shape = {});
  // Same, in the stored dtype converted to `dtype`.
  at::Tensor get_as(const std::string& name, c10::ScalarType dtype, at::IntArrayRef shape = {});

  // Every tensor handed out so far, by the name it was asked for (the model's state-dict names).
  const std::map<std::string, at::Tensor>& bound() const { return bound_; }
  // Names in the checkpoint that nothing asked for (a sign of a misread architecture).
  std::vector<std::string> unused() const;
  const std::string& path() const { return checkpoint_.path(); }
  c10::ScalarType dtype() const { return dtype_; }

 private:
  const std::string* resolve(const std::string& name) const;

  core::Checkpoint checkpoint_;
  c10::ScalarType dtype_;
  std::unique_ptr<core::WeightArena> arena_;  // resident only
  std::vector<std::pair<std::string, std::string>> aliases_;
  std::vector<std::string> names_;
  std::set<std::string> used_;
  std::map<std::string, at::Tensor> bound_;
};

}  // namespace glimpse::layers
