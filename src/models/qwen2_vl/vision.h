#pragma once

// The Qwen2-VL vision transformer (transformers modeling_qwen2_vl.py:
// Qwen2VisionTransformerPretrainedModel) and its Qwen2.5-VL variant (modeling_qwen2_5_vl.py:
// Qwen2_5_VisionTransformerPretrainedModel: RMSNorm, SwiGLU MLP, window attention).

#include <ATen/ATen.h>

#include <array>

#include <string>
#include <vector>

#include "glimpse/model/hooks.h"
#include "layers/modules.h"
#include "models/qwen2_vl/config.h"

namespace glimpse::models::qwen2_vl {

// Intermediate outputs for golden tests: the reference's forward hooks on patch_embed and on each
// block (for Qwen2.5-VL in the window-permuted order used inside the tower).
struct VisionTrace {
  at::Tensor patch_embed;
  std::vector<at::Tensor> blocks;
};

class VisionTransformer {
 public:
  VisionTransformer(layers::WeightLoader& weights, const VisionConfig& config,
                    const std::string& prefix = "visual.");

  // pixel_values [N, C*T*P*P], grid_thw [n, 3] int64 (checked by the caller) -> merged features
  // [N / merge^2, out_dim] in input order.
  at::Tensor forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw,
                     VisionTrace* trace = nullptr) const;

  // The blocks alone, with the hook sites vision.blocks.{i}.pre/post and vision probes for the
  // media of one `kind`: the patches entering the merger.
  struct Encoding {
    at::Tensor hidden;                  // [N, C]; Qwen2.5-VL: window order
    at::Tensor window_index;            // Qwen2.5-VL: merge-block group of each window-order group
    std::vector<std::int64_t> patches;  // per medium
  };
  Encoding encode(const at::Tensor& pixel_values, const at::Tensor& grid_thw, VisionTrace* trace,
                  model::ForwardHooks* hooks, model::Modality kind) const;
  // The merger over an encoding, in input order (what forward returns).
  at::Tensor merge(const Encoding& e) const;
  // The patches of an encoding in merge-block (input) order.
  at::Tensor merge_block_order(const Encoding& e) const;
  // The merger over patches in merge-block order, [rows, C] -> [rows / merge^2, out_dim].
  at::Tensor merge_rows(const at::Tensor& x) const;

  const VisionConfig& config() const { return config_; }

 private:
  struct Block {
    layers::LayerNorm ln1, ln2;  // Qwen2-VL
    layers::RMSNorm rms1, rms2;  // Qwen2.5-VL
    layers::Linear qkv, proj;
    layers::Linear fc1, fc2;                       // Qwen2-VL MLP
    layers::Linear gate_proj, up_proj, down_proj;  // Qwen2.5-VL MLP
  };

  at::Tensor norm(const Block& b, const at::Tensor& x, int which) const;
  at::Tensor mlp(const Block& b, const at::Tensor& x) const;
  // With `probe`, the vision probes the hooks want at this block are taken and delivered.
  struct Probe {
    model::ForwardHooks* hooks = nullptr;
    std::int64_t layer = 0;
    model::Modality kind = model::Modality::Image;
    const std::vector<std::int64_t>* patches = nullptr;  // per medium
    at::Tensor window_index;
  };
  at::Tensor attention(const Block& b, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin, const std::vector<std::int64_t>& cu_seqlens,
                       const Probe* probe = nullptr) const;
  void deliver_probes(const Probe& probe, const at::Tensor& q, const at::Tensor& k,
                      const std::vector<std::int64_t>& cu_seqlens) const;
  // [N, head_dim/2] rotary angles in fp32, patches in merge-block order.
  at::Tensor rotary_angles(const std::vector<std::array<std::int64_t, 3>>& grids) const;

  VisionConfig config_;
  at::Tensor patch_weight_;  // [embed, C, T, P, P]
  std::vector<Block> blocks_;
  layers::LayerNorm merger_ln_;
  layers::RMSNorm merger_rms_;
  layers::Linear merger_fc1_, merger_fc2_;
};

}  // namespace glimpse::models::qwen2_vl
