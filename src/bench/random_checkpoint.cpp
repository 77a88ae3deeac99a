#include "glimpse/bench/random_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "bench/internal.h"
#include "glimpse/core/error.h"
#include "glimpse/core/tensor.h"
#include "layers/rope.h"
#include "models/llama/modeling.h"
#include "models/llava/modeling.h"
#include "models/qwen2_vl/config.h"

namespace glimpse::bench {
namespace {

using Init = TensorSpec::Init;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Tensor lists, one function per family, named as the loaders in src/models/* read them.

struct SpecList {
  std::vector<TensorSpec> specs;
  bool lm = false;  // tensors added now belong to the language model
  void add(std::string name, std::vector<std::int64_t> shape, Init init = Init::Normal) {
    specs.push_back({std::move(name), std::move(shape), init, lm});
  }
  void linear(const std::string& p, std::int64_t in, std::int64_t out, bool bias) {
    add(p + ".weight", {out, in});
    if (bias) add(p + ".bias", {out}, Init::Bias);
  }
  void layer_norm(const std::string& p, std::int64_t dim) {
    add(p + ".weight", {dim}, Init::Gain);
    add(p + ".bias", {dim}, Init::Bias);
  }
  void rms_norm(const std::string& p, std::int64_t dim) { add(p + ".weight", {dim}, Init::Gain); }
};

// layers::Decoder (shared by Qwen2-VL, Qwen2, Llama and LLaVA's language model).
void decoder_tensors(SpecList& s, const layers::DecoderConfig& c) {
  s.lm = true;
  const std::int64_t h = c.hidden_size, q = c.num_heads * c.head_dim,
                     kv = c.num_kv_heads * c.head_dim, i = c.intermediate_size;
  s.add(c.prefix + "embed_tokens.weight", {c.vocab_size, h});
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = c.prefix + "layers." + std::to_string(l) + ".";
    s.rms_norm(p + "input_layernorm", h);
    s.linear(p + "self_attn.q_proj", h, q, c.qkv_bias);
    s.linear(p + "self_attn.k_proj", h, kv, c.qkv_bias);
    s.linear(p + "self_attn.v_proj", h, kv, c.qkv_bias);
    s.linear(p + "self_attn.o_proj", q, h, c.o_bias);
    s.rms_norm(p + "post_attention_layernorm", h);
    s.linear(p + "mlp.gate_proj", h, i, c.mlp_bias);
    s.linear(p + "mlp.up_proj", h, i, c.mlp_bias);
    s.linear(p + "mlp.down_proj", i, h, c.mlp_bias);
  }
  s.rms_norm(c.prefix + "norm", h);
  if (!c.tie_word_embeddings) s.add(c.lm_head, {c.vocab_size, h});
  s.lm = false;
}

// models/qwen2_vl/vision.cpp: VisionTransformer.
void qwen_vision_tensors(SpecList& s, const models::qwen2_vl::VisionConfig& c) {
  const std::string p = "visual.";
  const std::int64_t e = c.embed_dim;
  s.add(p + "patch_embed.proj.weight",
        {e, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size});
  for (std::int64_t i = 0; i < c.depth; ++i) {
    const std::string b = p + "blocks." + std::to_string(i) + ".";
    if (c.is_2_5) {
      s.rms_norm(b + "norm1", e);
      s.rms_norm(b + "norm2", e);
    } else {
      s.layer_norm(b + "norm1", e);
      s.layer_norm(b + "norm2", e);
    }
    s.linear(b + "attn.qkv", e, 3 * e, true);
    s.linear(b + "attn.proj", e, e, true);
    if (c.is_2_5) {
      s.linear(b + "mlp.gate_proj", e, c.mlp_dim, true);
      s.linear(b + "mlp.up_proj", e, c.mlp_dim, true);
      s.linear(b + "mlp.down_proj", c.mlp_dim, e, true);
    } else {
      s.linear(b + "mlp.fc1", e, c.mlp_dim, true);
      s.linear(b + "mlp.fc2", c.mlp_dim, e, true);
    }
  }
  if (c.is_2_5) {
    s.rms_norm(p + "merger.ln_q", e);
  } else {
    s.layer_norm(p + "merger.ln_q", e);
  }
  const std::int64_t merged = e * c.spatial_merge_size * c.spatial_merge_size;
  s.linear(p + "merger.mlp.0", merged, merged, true);
  s.linear(p + "merger.mlp.2", merged, c.out_dim, true);
}

// models/clip/vision.cpp: VisionTransformer under vision_tower.vision_model.
void clip_tensors(SpecList& s, const models::clip::VisionConfig& c) {
  const std::string p = "vision_tower.vision_model.";
  const std::int64_t h = c.hidden_size;
  s.add(p + "embeddings.class_embedding", {h});
  s.add(p + "embeddings.patch_embedding.weight", {h, c.num_channels, c.patch_size, c.patch_size});
  s.add(p + "embeddings.position_embedding.weight", {c.num_patches() + 1, h});
  s.layer_norm(p + "pre_layrnorm", h);
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = p + "encoder.layers." + std::to_string(i) + ".";
    s.layer_norm(l + "layer_norm1", h);
    s.linear(l + "self_attn.q_proj", h, h, true);
    s.linear(l + "self_attn.k_proj", h, h, true);
    s.linear(l + "self_attn.v_proj", h, h, true);
    s.linear(l + "self_attn.out_proj", h, h, true);
    s.layer_norm(l + "layer_norm2", h);
    s.linear(l + "mlp.fc1", h, c.intermediate_size, true);
    s.linear(l + "mlp.fc2", c.intermediate_size, h, true);
  }
  s.layer_norm(p + "post_layernorm", h);
}

core::Config text_section(const core::Config& c) {
  const auto t = c.find_section("text_config");
  return t ? *t : core::Config::parse("{}", c.source());
}

// The LLaVA language model as LlavaForConditionalGeneration::load configures it.
layers::DecoderConfig llava_decoder(const core::Config& c) {
  const core::Config text = text_section(c);
  const std::string type = text.get_string("model_type", "llama");
  if (type != "llama") {
    text.fail("model_type", "unsupported LLaVA language model '" + type + "' (known: llama)");
  }
  layers::DecoderConfig d = models::llama::decoder_config(text, false);
  d.tie_word_embeddings = c.get_bool("tie_word_embeddings", d.tie_word_embeddings);
  d.prefix = "language_model.model.";
  d.lm_head = "language_model.lm_head.weight";
  (void)layers::RopeConfig::from_config(text, d.head_dim);  // reject bad rope_scaling now
  return d;
}

// ---------------------------------------------------------------------------------------------
// Deterministic generation.

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

std::int64_t element_size(c10::ScalarType dtype) {
  return dtype == at::kBFloat16 ? 2 : 4;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) throw Error(path.string() + ": cannot write");
}

void write_json(const std::filesystem::path& path, const json& j) {
  write_text(path, j.dump(2) + "\n");
}

// ---------------------------------------------------------------------------------------------
// Tokenizer and the other side files.

// An integer key, or the first element of an integer list (eos_token_id may be either).
std::optional<std::int64_t> token_key(const core::Config& c, const char* key) {
  if (!c.has(key)) return std::nullopt;
  const json& v = c.raw().at(key);
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<std::int64_t>();
  return std::nullopt;
}

struct Special {
  std::string content;
  std::int64_t id;
};

// Gives every token a distinct id outside [first_free, ...) collisions: ids taken by bytes, out
// of the vocabulary or already used move to the next free id.
void assign_ids(std::vector<Special>& specials, std::int64_t reserved_below, std::int64_t vocab) {
  std::set<std::int64_t> used;
  std::vector<Special*> moved;
  for (auto& s : specials) {
    if (s.id < reserved_below || s.id >= vocab || used.count(s.id)) {
      moved.push_back(&s);
    } else {
      used.insert(s.id);
    }
  }
  std::int64_t next = reserved_below;
  for (Special* s : moved) {
    while (used.count(next)) ++next;
    s->id = next;
    used.insert(next);
  }
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards.
std::vector<std::string> byte_tokens() {
  std::vector<std::string> out(256);
  auto utf8 = [](std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  std::uint32_t n = 0;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    out[b] = utf8(printable ? b : 256 + n++);
  }
  return out;
}

json added_token(const Special& s) {
  return {{"id", s.id},      {"content", s.content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false},  {"special", true}};
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", false},
          {"use_regex", use_regex}};
}

// A byte-level BPE tokenizer.json: 256 byte tokens from id `first_byte_id`, no merges, and the
// special tokens as added tokens.
json tokenizer_json(const std::vector<Special>& specials, std::int64_t first_byte_id, bool qwen,
                    const std::string& bos) {
  json vocab = json::object();
  const auto bytes = byte_tokens();
  for (std::int64_t b = 0; b < 256; ++b) vocab[bytes[b]] = first_byte_id + b;
  json added = json::array();
  for (const auto& s : specials) {
    added.push_back(added_token(s));
    vocab[s.content] = s.id;
  }
  json t = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
  t["added_tokens"] = added;
  if (qwen) {
    // Qwen2's normalizer and pre-tokenizer (the published tokenizer.json).
    t["normalizer"] = json{{"type", "NFC"}};
    json split = json::object();
    split["type"] = "Split";
    split["pattern"] = json::object();
    split["pattern"]["Regex"] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    split["behavior"] = "Isolated";
    split["invert"] = false;
    json pre = json::object();
    pre["type"] = "Sequence";
    pre["pretokenizers"] = json::array();
    pre["pretokenizers"].push_back(split);
    pre["pretokenizers"].push_back(byte_level(false));
    t["pre_tokenizer"] = pre;
    t["post_processor"] = byte_level(false);
  } else {
    // Llama-style: BOS added by the post-processor.
    t["normalizer"] = nullptr;
    t["pre_tokenizer"] = byte_level(true);
    std::int64_t bos_id = 1;
    for (const auto& s : specials) {
      if (s.content == bos) bos_id = s.id;
    }
    auto piece = [](const char* kind, const std::string& id, int type_id) {
      json inner = json::object();
      inner["id"] = id;
      inner["type_id"] = type_id;
      json p = json::object();
      p[kind] = inner;
      return p;
    };
    json post = json::object();
    post["type"] = "TemplateProcessing";
    post["single"] = json::array({piece("SpecialToken", bos, 0), piece("Sequence", "A", 0)});
    post["pair"] = json::array({piece("SpecialToken", bos, 0), piece("Sequence", "A", 0),
                                piece("SpecialToken", bos, 1), piece("Sequence", "B", 1)});
    json special = json::object();
    special["id"] = bos;
    special["ids"] = json::array({bos_id});
    special["tokens"] = json::array({bos});
    post["special_tokens"] = json::object();
    post["special_tokens"][bos] = special;
    t["post_processor"] = post;
  }
  t["decoder"] = byte_level(false);
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", json::array()}};
  return t;
}

// transformers' Qwen2-VL chat template (chat_template.json of the published checkpoints).
constexpr const char* kQwenChatTemplate =
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for "
    "message in messages %}{% if loop.first and message['role'] != 'system' "
    "%}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ "
    "message['role'] }}\n{% if message['content'] is string %}{{ message['content'] "
    "}}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == "
    "'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = "
    "image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
    "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' "
    "in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif "
    "'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% "
    "endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// llava-hf/llava-1.5-7b-hf chat_template.json.
constexpr const char* kLlavaChatTemplate =
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ "
    "message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor "
    "%}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% "
    "endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif "
    "%}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";

const json kClipMean = {0.48145466, 0.4578275, 0.40821073};
const json kClipStd = {0.26862954, 0.26130258, 0.27577711};

void write_qwen_side_files(const std::filesystem::path& dir, const core::Config& c,
                           std::int64_t vocab, const models::qwen2_vl::VisionConfig* vision) {
  const std::int64_t endoftext = token_key(c, "bos_token_id").value_or(151643);
  const std::int64_t vision_start = c.get_int("vision_start_token_id", 151652);
  std::vector<Special> s{
      {"<|endoftext|>", endoftext},
      {"<|im_start|>", endoftext + 1},
      {"<|im_end|>", token_key(c, "eos_token_id").value_or(endoftext + 2)},
      {"<|vision_start|>", vision_start},
      {"<|vision_end|>", c.get_int("vision_end_token_id", vision_start + 1)},
      {"<|vision_pad|>", c.get_int("vision_token_id", vision_start + 2)},
      {"<|image_pad|>", c.get_int("image_token_id", 151655)},
      {"<|video_pad|>", c.get_int("video_token_id", 151656)},
  };
  assign_ids(s, 256, vocab);
  write_json(dir / "tokenizer.json", tokenizer_json(s, 0, true, ""));
  json extra = json::array();
  for (std::size_t i = 1; i < s.size(); ++i) extra.push_back(s[i].content);
  write_json(dir / "tokenizer_config.json", {{"add_bos_token", false},
                                             {"add_prefix_space", false},
                                             {"additional_special_tokens", extra},
                                             {"clean_up_tokenization_spaces", false},
                                             {"eos_token", "<|im_end|>"},
                                             {"pad_token", "<|endoftext|>"},
                                             {"model_max_length", 32768},
                                             {"tokenizer_class", "Qwen2Tokenizer"}});
  write_json(dir / "generation_config.json", {{"bos_token_id", s[0].id},
                                              {"eos_token_id", json::array({s[2].id, s[0].id})},
                                              {"pad_token_id", s[0].id}});
  write_json(dir / "chat_template.json", {{"chat_template", kQwenChatTemplate}});
  if (vision != nullptr) {
    // Qwen2-VL-7B-Instruct's preprocessor_config.json; patch sizes from the vision config.
    write_json(dir / "preprocessor_config.json",
               {{"do_convert_rgb", true},
                {"do_normalize", true},
                {"do_rescale", true},
                {"do_resize", true},
                {"image_mean", kClipMean},
                {"image_std", kClipStd},
                {"image_processor_type", "Qwen2VLImageProcessor"},
                {"processor_class", "Qwen2VLProcessor"},
                {"max_pixels", 12845056},
                {"min_pixels", 3136},
                {"size", {{"longest_edge", 12845056}, {"shortest_edge", 3136}}},
                {"merge_size", vision->spatial_merge_size},
                {"patch_size", vision->patch_size},
                {"temporal_patch_size", vision->temporal_patch_size},
                {"resample", 3},
                {"rescale_factor", 0.00392156862745098}});
  }
}

void write_llama_side_files(const std::filesystem::path& dir, const core::Config& c,
                            std::int64_t vocab, const models::llava::LlavaConfig* llava) {
  std::vector<Special> s{{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  if (llava != nullptr) s.push_back({"<image>", llava->image_token_index});
  if (const auto pad = token_key(c, "pad_token_id")) s.push_back({"<pad>", *pad});
  // Bytes take ids 3..258 (where Llama's <0xNN> byte tokens sit); specials avoid them, except
  // the three fixed ones below.
  std::vector<Special> rest(s.begin() + 3, s.end());
  for (auto& r : rest) {
    if (r.id >= 3 && r.id < 259) r.id = -1;
  }
  assign_ids(rest, 259, vocab);
  std::copy(rest.begin(), rest.end(), s.begin() + 3);
  write_json(dir / "tokenizer.json", tokenizer_json(s, 3, false, "<s>"));
  json config = {
      {"add_bos_token", true}, {"add_eos_token", false},   {"bos_token", "<s>"},
      {"eos_token", "</s>"},   {"unk_token", "<unk>"},     {"clean_up_tokenization_spaces", false},
      {"legacy", false},       {"model_max_length", 4096}, {"tokenizer_class", "LlamaTokenizer"}};
  if (s.size() > 3) {
    json extra = json::array();
    for (std::size_t i = 3; i < s.size(); ++i) extra.push_back(s[i].content);
    config["additional_special_tokens"] = extra;
  }
  for (const auto& t : s) {
    if (t.content == "<pad>") config["pad_token"] = "<pad>";
  }
  write_json(dir / "tokenizer_config.json", config);
  json gen = {{"bos_token_id", 1}, {"eos_token_id", 2}};
  for (const auto& t : s) {
    if (t.content == "<pad>") gen["pad_token_id"] = t.id;
  }
  write_json(dir / "generation_config.json", gen);
  write_json(dir / "chat_template.json", {{"chat_template", kLlavaChatTemplate}});
  if (llava != nullptr) {
    const std::int64_t size = llava->vision.image_size;
    write_json(dir / "preprocessor_config.json",
               {{"crop_size", {{"height", size}, {"width", size}}},
                {"do_center_crop", true},
                {"do_convert_rgb", true},
                {"do_normalize", true},
                {"do_rescale", true},
                {"do_resize", true},
                {"image_mean", kClipMean},
                {"image_std", kClipStd},
                {"image_processor_type", "CLIPImageProcessor"},
                {"processor_class", "LlavaProcessor"},
                {"resample", 3},
                {"rescale_factor", 0.00392156862745098},
                {"size", {{"shortest_edge", size}}}});
    write_json(dir / "processor_config.json",
               {{"image_seq_length", llava->features_per_image()},
                {"patch_size", llava->vision.patch_size},
                {"processor_class", "LlavaProcessor"},
                {"vision_feature_select_strategy", llava->vision_feature_select_strategy}});
  }
}

}  // namespace

layers::DecoderConfig text_decoder_config(const core::Config& c) {
  switch (detect_family(c)) {
    case Family::Qwen2VL:
    case Family::Qwen25VL:
      return models::qwen2_vl::parse_config(c).text;
    case Family::Llava:
      return llava_decoder(c);
    case Family::Qwen2:
    case Family::Llama:
      // As CausalLM::load decides: q/k/v biases when model_type says qwen2.
      return models::llama::decoder_config(c, c.get_string("model_type", "") == "qwen2");
  }
  return {};
}

std::int64_t TensorSpec::numel() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

std::string family_name(Family family) {
  switch (family) {
    case Family::Qwen2VL:
      return "qwen2_vl";
    case Family::Qwen25VL:
      return "qwen2_5_vl";
    case Family::Llava:
      return "llava";
    case Family::Llama:
      return "llama";
    case Family::Qwen2:
      return "qwen2";
  }
  return "?";
}

Family detect_family(const core::Config& c) {
  const auto archs = c.get_string_list("architectures", {});
  if (!archs.empty()) {
    const std::string& a = archs[0];
    if (a == "Qwen2VLForConditionalGeneration") return Family::Qwen2VL;
    if (a == "Qwen2_5_VLForConditionalGeneration") return Family::Qwen25VL;
    if (a == "LlavaForConditionalGeneration") return Family::Llava;
    if (a == "LlamaForCausalLM") return Family::Llama;
    if (a == "Qwen2ForCausalLM") return Family::Qwen2;
  }
  if (!c.has("model_type")) {
    c.fail(archs.empty() ? "model_type" : "architectures",
           archs.empty() ? "missing (and no architectures)"
                         : "unknown architecture '" + archs[0] + "' and no model_type");
  }
  const std::string t = c.get_string("model_type");
  if (t == "qwen2_vl") return Family::Qwen2VL;
  if (t == "qwen2_5_vl") return Family::Qwen25VL;
  if (t == "llava") return Family::Llava;
  if (t == "llama") return Family::Llama;
  if (t == "qwen2") return Family::Qwen2;
  c.fail("model_type", "unsupported model '" + t +
                           "' (init-random knows qwen2_vl, qwen2_5_vl, llava, llama, qwen2)");
}

std::vector<TensorSpec> checkpoint_tensors(const core::Config& c) {
  SpecList s;
  switch (detect_family(c)) {
    case Family::Qwen2VL:
    case Family::Qwen25VL: {
      const auto q = models::qwen2_vl::parse_config(c);
      layers::DecoderConfig d = q.text;  // prefix model., lm_head lm_head.weight
      decoder_tensors(s, d);
      qwen_vision_tensors(s, q.vision);
      break;
    }
    case Family::Llava: {
      const layers::DecoderConfig d = llava_decoder(c);
      const auto l = models::llava::LlavaConfig::from_config(c);
      clip_tensors(s, l.vision);
      const std::int64_t in =
          l.vision.hidden_size * static_cast<std::int64_t>(l.vision_feature_layers.size());
      s.linear("multi_modal_projector.linear_1", in, d.hidden_size, l.projector_bias);
      s.linear("multi_modal_projector.linear_2", d.hidden_size, d.hidden_size, l.projector_bias);
      decoder_tensors(s, d);
      break;
    }
    case Family::Llama:
    case Family::Qwen2: {
      const layers::DecoderConfig d = text_decoder_config(c);
      (void)layers::RopeConfig::from_config(c, d.head_dim);
      decoder_tensors(s, d);
      break;
    }
  }
  return std::move(s.specs);
}

at::Tensor random_tensor(const TensorSpec& spec, std::uint64_t seed, c10::ScalarType dtype) {
  const double stddev = spec.init == Init::Bias ? 0.01 : 0.02;
  at::Tensor out = at::empty(spec.shape, at::TensorOptions().dtype(dtype));
  at::Tensor flat = out.view({-1});
  const std::int64_t n = flat.numel();
  // Fixed chunks with their own generators: the values do not depend on the thread count, and
  // a bf16 tensor needs only one chunk of fp32 scratch per thread.
  constexpr std::int64_t kChunk = 1 << 20;
  const std::uint64_t tensor_seed = splitmix64(seed ^ splitmix64(fnv1a(spec.name)));
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  at::parallel_for(0, chunks, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const std::int64_t start = i * kChunk, len = std::min(kChunk, n - start);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(
          splitmix64(tensor_seed + static_cast<std::uint64_t>(i)));
      at::Tensor values = at::empty({len}, at::TensorOptions().dtype(at::kFloat));
      values.normal_(0.0, stddev, gen);
      if (spec.init == Init::Gain) values.add_(1.0);
      flat.narrow(0, start, len).copy_(values);
    }
  });
  return out;
}

RandomCheckpointInfo write_random_checkpoint(const core::Config& config, const std::string& out_dir,
                                             const RandomCheckpointOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    throw UnsupportedError("init-random: dtype must be f32 or bf16");
  }
  if (options.max_shard_bytes <= 0) throw InputError("init-random: max_shard_bytes must be > 0");
  RandomCheckpointInfo info;
  info.family = detect_family(config);
  const std::vector<TensorSpec> specs = checkpoint_tensors(config);  // validates the config

  namespace fs = std::filesystem;
  const fs::path dir(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw InputError(out_dir + ": cannot create the output folder (" + ec.message() + ")");
  }

  // Shard plan first (sizes only), so that file names know the shard count.
  const std::int64_t esize = element_size(options.dtype);
  std::vector<std::vector<const TensorSpec*>> shards(1);
  std::int64_t shard_bytes = 0, total = 0;
  for (const auto& s : specs) total += s.numel() * esize;
  for (const auto& s : specs) {
    const std::int64_t b = s.numel() * esize;
    if (total > options.max_shard_bytes && !shards.back().empty() &&
        shard_bytes + b > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&s);
    shard_bytes += b;
    info.parameters += s.numel();
  }
  info.tensors = static_cast<std::int64_t>(specs.size());
  info.bytes = total;

  // Remove files of an earlier run with another layout.
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("model", 0) == 0 &&
        (entry.path().extension() == ".safetensors" || name == "model.safetensors.index.json")) {
      fs::remove(entry.path());
    }
  }

  json weight_map = json::object();
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  for (std::size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string file = shards.size() == 1 ? "model.safetensors" : name;
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const TensorSpec* s : shards[i]) {
      tensors.emplace_back(s->name, random_tensor(*s, options.seed, options.dtype));
      weight_map[s->name] = file;
    }
    core::save_tensors((dir / file).string(), tensors, metadata);
    info.files.push_back(file);
  }
  if (shards.size() > 1) {
    write_json(dir / "model.safetensors.index.json",
               {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}});
  }

  // config.json: the input, pretty-printed, with torch_dtype naming what was written.
  json normalised = config.raw();
  normalised["torch_dtype"] = options.dtype == at::kBFloat16 ? "bfloat16" : "float32";
  // Tools say so when they run such a checkpoint (its answers are noise); Hugging Face ignores
  // unknown keys.
  normalised[kRandomWeightsKey] = true;
  write_json(dir / "config.json", normalised);

  switch (info.family) {
    case Family::Qwen2VL:
    case Family::Qwen25VL: {
      const auto q = models::qwen2_vl::parse_config(config);
      write_qwen_side_files(dir, config, q.text.vocab_size, &q.vision);
      break;
    }
    case Family::Qwen2:
      write_qwen_side_files(dir, config, text_decoder_config(config).vocab_size, nullptr);
      break;
    case Family::Llava: {
      const auto l = models::llava::LlavaConfig::from_config(config);
      write_llama_side_files(dir, config, llava_decoder(config).vocab_size, &l);
      break;
    }
    case Family::Llama:
      write_llama_side_files(dir, config, text_decoder_config(config).vocab_size, nullptr);
      break;
  }
  return info;
}

}  // namespace glimpse::bench
