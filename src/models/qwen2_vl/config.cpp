#include "models/qwen2_vl/config.h"

#include <numeric>

#include "glimpse/core/error.h"

namespace glimpse::models::qwen2_vl {
namespace {

// Text keys live at the top level (published checkpoints) or under `text_config` (newer
// transformers); the nested value wins when both exist.
class TextKeys {
 public:
  explicit TextKeys(const core::Config& c) : top_(c), nested_(c.find_section("text_config")) {}
  const core::Config& at(const std::string& key) const {
    return nested_ && nested_->has(key) ? *nested_ : top_;
  }
  std::int64_t positive(const std::string& key) const {
    const auto& c = at(key);
    const std::int64_t v = c.get_int(key);
    if (v <= 0) c.fail(key, "expected a positive integer, found " + std::to_string(v));
    return v;
  }

 private:
  const core::Config& top_;
  std::optional<core::Config> nested_;
};

std::int64_t positive(const core::Config& c, const std::string& key, std::int64_t fallback) {
  const std::int64_t v = c.get_int(key, fallback);
  if (v <= 0) c.fail(key, "expected a positive integer, found " + std::to_string(v));
  return v;
}

VisionConfig parse_vision(const core::Config& root, bool is_2_5) {
  VisionConfig v;
  v.is_2_5 = is_2_5;
  const auto section = root.find_section("vision_config");
  const core::Config c = section ? *section : core::Config::parse("{}", root.source());
  v.depth = positive(c, "depth", 32);
  v.num_heads = positive(c, "num_heads", 16);
  v.in_channels = positive(c, "in_channels", positive(c, "in_chans", 3));
  v.patch_size = positive(c, "patch_size", positive(c, "spatial_patch_size", 14));
  v.spatial_merge_size = positive(c, "spatial_merge_size", 2);
  v.temporal_patch_size = positive(c, "temporal_patch_size", 2);
  if (!is_2_5) {
    // Qwen2VLVisionConfig: `embed_dim` is the ViT width, `hidden_size` the merger output.
    v.embed_dim = positive(c, "embed_dim", 1280);
    v.out_dim = positive(c, "hidden_size", 3584);
    v.mlp_dim = static_cast<std::int64_t>(v.embed_dim * c.get_float("mlp_ratio", 4.0));
    v.act = layers::parse_activation(c.get_string("hidden_act", "quick_gelu"),
                                     root.source() + ": vision_config.hidden_act");
  } else {
    // Qwen2_5_VLVisionConfig: `hidden_size` is the ViT width, `out_hidden_size` the output.
    v.embed_dim = positive(c, "hidden_size", 1280);
    v.out_dim = positive(c, "out_hidden_size", 3584);
    v.mlp_dim = positive(c, "intermediate_size", 3420);
    v.act = layers::parse_activation(c.get_string("hidden_act", "silu"),
                                     root.source() + ": vision_config.hidden_act");
    v.window_size = positive(c, "window_size", 112);
    v.fullatt_block_indexes = c.get_int_list("fullatt_block_indexes", {7, 15, 23, 31});
    v.tokens_per_second = c.get_float("tokens_per_second", 4.0);
    for (const auto i : v.fullatt_block_indexes) {
      if (i < 0 || i >= v.depth) {
        c.fail("fullatt_block_indexes", "index " + std::to_string(i) + " outside [0, depth)");
      }
    }
    if (v.window_size % (v.spatial_merge_size * v.patch_size) != 0) {
      c.fail("window_size", "expected a multiple of spatial_merge_size * patch_size");
    }
  }
  if (v.embed_dim % v.num_heads != 0 || v.head_dim() % 4 != 0) {
    c.fail("num_heads", "the ViT width must split into heads whose size is a multiple of 4");
  }
  return v;
}

}  // namespace

Qwen2VLConfig parse_config(const core::Config& root) {
  Qwen2VLConfig q;
  q.model_type = root.get_string("model_type");
  if (q.model_type != "qwen2_vl" && q.model_type != "qwen2_5_vl") {
    root.fail("model_type", "expected qwen2_vl or qwen2_5_vl, found '" + q.model_type + "'");
  }
  const bool is_2_5 = q.model_type == "qwen2_5_vl";
  const auto archs = root.get_string_list("architectures", {});
  q.architecture = archs.empty() ? "" : archs[0];

  const TextKeys text(root);
  auto& t = q.text;
  t.vocab_size = text.positive("vocab_size");
  t.hidden_size = text.positive("hidden_size");
  t.intermediate_size = text.positive("intermediate_size");
  t.num_layers = text.positive("num_hidden_layers");
  t.num_heads = text.positive("num_attention_heads");
  t.num_kv_heads = text.at("num_key_value_heads").has("num_key_value_heads")
                       ? text.positive("num_key_value_heads")
                       : t.num_heads;
  if (t.hidden_size % t.num_heads != 0) {
    text.at("num_attention_heads").fail("num_attention_heads", "does not divide hidden_size");
  }
  if (t.num_heads % t.num_kv_heads != 0) {
    text.at("num_key_value_heads")
        .fail("num_key_value_heads", "does not divide num_attention_heads");
  }
  t.head_dim = t.hidden_size / t.num_heads;
  t.rms_norm_eps = text.at("rms_norm_eps").get_float("rms_norm_eps", 1e-6);
  // Qwen2VLConfig default (configuration_qwen2_vl.py).
  t.max_position_embeddings =
      text.at("max_position_embeddings").get_int("max_position_embeddings", 32768);
  t.qkv_bias = true;
  t.act = layers::parse_activation(text.at("hidden_act").get_string("hidden_act", "silu"),
                                   root.source() + ": hidden_act");
  t.tie_word_embeddings = root.get_bool("tie_word_embeddings", false);
  q.rope_theta = text.at("rope_theta").get_float("rope_theta", 1e6);

  // rope_scaling: {"type": "mrope" | "default", "mrope_section": [...]}; 4.50 rewrites "mrope"
  // to "default", real checkpoints say "mrope".
  const core::Config& rc = text.at("rope_scaling");
  if (!rc.has("rope_scaling")) rc.fail("rope_scaling", "missing (expected mrope_section)");
  const core::Config rope = rc.section("rope_scaling");
  const std::string type = rope.get_string("type", rope.get_string("rope_type", "default"));
  if (type != "mrope" && type != "default") {
    rope.fail("type", "unsupported rope type '" + type + "' (expected mrope or default)");
  }
  q.mrope_section = rope.get_int_list("mrope_section");
  const std::int64_t sum =
      std::accumulate(q.mrope_section.begin(), q.mrope_section.end(), std::int64_t{0});
  if (q.mrope_section.size() != 3 || sum * 2 != t.head_dim ||
      std::any_of(q.mrope_section.begin(), q.mrope_section.end(),
                  [](std::int64_t s) { return s <= 0; })) {
    rope.fail("mrope_section", "expected three positive sizes summing to head_dim/2 = " +
                                   std::to_string(t.head_dim / 2));
  }

  q.image_token_id = root.get_int("image_token_id", 151655);
  q.video_token_id = root.get_int("video_token_id", 151656);
  q.vision_start_token_id = root.get_int("vision_start_token_id", 151652);
  q.vision = parse_vision(root, is_2_5);
  if (q.vision.out_dim != t.hidden_size) {
    root.fail(is_2_5 ? "vision_config.out_hidden_size" : "vision_config.hidden_size",
              "the merger output (" + std::to_string(q.vision.out_dim) +
                  ") must equal the text hidden_size (" + std::to_string(t.hidden_size) + ")");
  }
  return q;
}

}  // namespace glimpse::models::qwen2_vl
