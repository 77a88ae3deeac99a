#include "methods/feedback/memvr.h"

#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "glimpse/core/error.h"
#include "methods/prune/selection.h"

namespace glimpse::methods::feedback {

at::Tensor top_entropy(const at::Tensor& logits, std::int64_t k) {
  if (logits.dim() != 2 || logits.size(1) < 2)
    throw InputError("memvr: expected logits [B, V >= 2]");
  k = std::min(k, logits.size(1));
  const at::Tensor p = at::softmax(std::get<0>(at::topk(logits.to(at::kFloat), k, -1)), -1);
  return -(p * at::log(p)).sum(-1) / std::log(static_cast<double>(k));
}

at::Tensor retrace_ffn(const at::Tensor& x, const at::Tensor& f, const at::Tensor& z, double w_up,
                       double w_down, double alpha, bool silu) {
  const at::Tensor zf = z.to(at::kFloat);
  const double z_mean = zf.abs().mean().item<double>();
  if (!(z_mean > 0)) return f;
  at::Tensor a = at::matmul(x.to(at::kFloat), zf.t()) * (w_up / z_mean);
  if (silu) a = at::silu(a);
  a = at::matmul(a, zf) * (w_down / z_mean);
  const double a_mean = a.abs().mean().item<double>();
  if (!(a_mean > 0) || !std::isfinite(a_mean)) return f;
  const at::Tensor ff = f.to(at::kFloat);
  const double f_mean = ff.abs().mean().item<double>();
  return ((1 - alpha) * ff + alpha * (f_mean / a_mean) * a).to(f.scalar_type());
}

MemVR::MemVR(double threshold, double alpha, std::vector<std::int64_t> layers, bool silu)
    : threshold_(threshold), alpha_(alpha), layers_(std::move(layers)), silu_(silu) {}

std::unique_ptr<pipeline::Method> MemVR::create(const core::Config& params) {
  for (const auto& key : params.keys()) {
    if (key != "type" && key != "threshold" && key != "alpha" && key != "layers" &&
        key != "activation") {
      params.fail(key, "unknown MemVR parameter (expected threshold, alpha, layers, activation)");
    }
  }
  // MemVR README / eval_scripts: entropy_threshold 0.75 everywhere; LLaVA-1.5 (MME, MM-Vet):
  // retracing_ratio 0.12, start 5, end 16.
  const double threshold = params.get_float("threshold", 0.75);
  if (!std::isfinite(threshold) || threshold < 0)
    params.fail("threshold", "expected a finite entropy threshold >= 0 (>= 1: never fires)");
  const double alpha = params.get_float("alpha", 0.12);
  if (!(alpha >= 0 && alpha <= 1)) params.fail("alpha", "expected a retracing ratio in [0, 1]");
  std::vector<std::int64_t> layers;
  if (params.has("layers")) {
    layers = params.get_int_list("layers");
    if (layers.size() != 2 || layers[0] < 0 || layers[1] < layers[0])
      params.fail("layers", "expected [start, end], exclusive bounds, 0 <= start <= end");
  }
  const std::string act = params.get_string("activation", "none");
  if (act != "none" && act != "silu") params.fail("activation", "expected \"none\" or \"silu\"");
  return std::make_unique<MemVR>(threshold, alpha, std::move(layers), act == "silu");
}

void MemVR::bind(const pipeline::MethodContext& context) {
  const std::int64_t n = context.num_layers();
  if (layers_.empty()) {
    start_ = prune::scale_layer(5, n);
    end_ = prune::scale_layer(16, n);
  } else {
    start_ = layers_[0];
    end_ = layers_[1];
    if (end_ > n) {
      throw ConfigError("memvr: key 'layers': end " + std::to_string(end_) +
                        " is past this model's " + std::to_string(n) + " decoder layers");
    }
  }
  // The FFN weights' magnitudes, by state-dict name (the decoder's layers, not the tower's).
  w_up_.assign(n, 0);
  w_down_.assign(n, 0);
  const auto names = context.model().weight_names();
  auto mean_abs = [&](std::int64_t l, const std::string& proj) {
    const std::string tail = "layers." + std::to_string(l) + ".mlp." + proj + ".weight";
    for (const auto& name : names) {
      if (name.size() >= tail.size() + 1 &&
          name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
          name[name.size() - tail.size() - 1] == '.' && name.find("visual") == std::string::npos &&
          name.find("vision") == std::string::npos) {
        return context.weight(name).to(at::kFloat).abs().mean().item<double>();
      }
    }
    throw ConfigError("memvr: the model has no weight '..." + tail + "' (a gated FFN is needed)");
  };
  for (std::int64_t l = std::max<std::int64_t>(start_ + 2, 0); l <= std::min(end_, n - 1); ++l) {
    w_up_[l] = mean_abs(l, "up_proj");
    w_down_[l] = mean_abs(l, "down_proj");
  }
  context_ = context;
}

void MemVR::on_vision_out(model::VisionOut& vision) {
  std::vector<at::Tensor> parts;
  if (vision.image_embeds.defined()) parts.push_back(vision.image_embeds);
  if (vision.video_embeds.defined()) parts.push_back(vision.video_embeds);
  if (!parts.empty()) incoming_ = at::cat(parts, 0);
}

void MemVR::on_block_pre(model::BlockPre& block) {
  if (block.layer != 0) return;
  if (!context_) throw Error("memvr: bind the pipeline to the model first (Pipeline::bind)");
  if (block.prefill) {  // a new prompt: its media are the memory (none without media)
    memory_ = incoming_;
    retraced_.clear();
    forwards_ = lens_rows_ = 0;
  } else if (incoming_.defined()) {  // media appended after the prompt join the memory
    memory_ = memory_.defined() ? at::cat({memory_, incoming_}, 0) : incoming_;
  }
  incoming_ = at::Tensor();
  armed_.assign(block.hidden.size(0), -1);
  ++forwards_;
}

void MemVR::on_block_post(model::BlockPost& block) {
  const std::int64_t l = block.layer;
  if (!memory_.defined() || !(l > start_ && l < end_) || l + 1 >= context_->num_layers()) return;
  // Only sequences that have not triggered in this forward read the lens.
  std::vector<std::int64_t> rows;
  for (std::size_t b = 0; b < armed_.size(); ++b) {
    if (armed_[b] < 0) rows.push_back(static_cast<std::int64_t>(b));
  }
  if (rows.empty()) return;
  const at::Tensor index = at::tensor(rows, at::kLong);
  const at::Tensor last = block.hidden.select(1, block.hidden.size(1) - 1).index_select(0, index);
  const at::Tensor h = top_entropy(context_->logits_from_hidden(last, l));
  lens_rows_ += static_cast<std::int64_t>(rows.size());
  const auto* hp = h.data_ptr<float>();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (hp[i] > threshold_) armed_[rows[i]] = l + 1;  // strict, as the official H_l > tau
  }
}

void MemVR::on_mlp(model::MlpSite& mlp) {
  bool any = false;
  for (const auto a : armed_) any = any || a == mlp.layer;
  if (!any) return;
  at::Tensor out = mlp.output.clone();
  for (std::size_t b = 0; b < armed_.size(); ++b) {
    if (armed_[b] != mlp.layer) continue;
    const auto i = static_cast<std::int64_t>(b);
    out[i].copy_(retrace_ffn(mlp.input[i], mlp.output[i], memory_, w_up_[mlp.layer],
                             w_down_[mlp.layer], alpha_, silu_));
    retraced_.push_back(mlp.layer);
  }
  mlp.output = out;
}

void MemVR::report(pipeline::Report& report) const {
  auto& e = report.add("memvr");
  e.numbers["threshold"] = threshold_;
  e.numbers["alpha"] = alpha_;
  e.lists["layers"] = {start_, end_};
  e.strings["activation"] = silu_ ? "silu" : "none";
  e.numbers["visual_tokens"] = memory_.defined() ? static_cast<double>(memory_.size(0)) : 0.0;
  e.numbers["forwards"] = static_cast<double>(forwards_);
  e.numbers["lens_rows"] = static_cast<double>(lens_rows_);  // logit-lens projections
  e.numbers["triggered"] = static_cast<double>(retraced_.size());
  std::vector<std::int64_t> per_layer(context_ ? context_->num_layers() : 0, 0);
  for (const auto l : retraced_) {
    if (l < static_cast<std::int64_t>(per_layer.size())) ++per_layer[l];
  }
  e.lists["retraced_per_layer"] = per_layer;
}

}  // namespace glimpse::methods::feedback
