#include "glimpse/demo/train.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/json_util.h"
#include "demo/bpe_trainer.h"
#include "glimpse/bench/random_checkpoint.h"
#include "glimpse/core/config.h"
#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"
#include "glimpse/core/tensor.h"
#include "glimpse/demo/world.h"
#include "glimpse/model/model.h"
#include "glimpse/model/processor.h"
#include "glimpse/text/tokenizer.h"
#include "kernels/ops.h"

namespace glimpse::demo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double kBeta1 = 0.9, kBeta2 = 0.98, kEps = 1e-8;
constexpr const char* kTrainingFile = "training.json";  // in out_dir: how the weights were made

json read_json(const fs::path& p) {
  return core::read_json_file(p.string());
}

void write_json_atomic(const fs::path& p, const json& j) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw Error(tmp.string() + ": cannot write");
  }
  fs::rename(tmp, p);
}

void save_atomic(const fs::path& p, const std::vector<std::pair<std::string, at::Tensor>>& t) {
  const fs::path tmp = p.string() + ".tmp";
  core::save_tensors(tmp.string(), t);
  fs::rename(tmp, p);
}

// The options a resumed run must share with the run it continues (the rest may change).
json identity(const TrainOptions& o) {
  return {{"data_seed", o.data_seed},
          {"init_seed", o.init_seed},
          {"image_size", o.image_size},
          {"steps", o.steps},
          {"batch", o.batch},
          {"learning_rate", o.learning_rate},
          {"warmup", o.warmup},
          {"min_learning_rate_ratio", o.min_learning_rate_ratio},
          {"weight_decay", o.weight_decay},
          {"clip_norm", o.clip_norm},
          {"aux_weight", o.aux_weight},
          {"aux_input_weight", o.aux_input_weight},
          {"aux_position", o.aux_position},
          {"vision_own_loss", o.vision_own_loss}};
}

void check_options(const TrainOptions& o) {
  auto bad = [](const std::string& what) { throw InputError("train-demo: " + what); };
  if (o.config.empty()) bad("--config: expected a config.json");
  if (o.out_dir.empty()) bad("--out: expected a folder");
  if (o.state_dir.empty()) bad("--state: expected a folder");
  if (o.image_size < 56 || o.image_size > 1024 || o.image_size % 28 != 0)
    bad("--image-size: expected a multiple of 28 in [56, 1024]");
  if (o.steps <= 0 || o.steps > 10'000'000) bad("--steps: expected 1..1e7");
  if (o.batch <= 0 || o.batch > 4096) bad("--batch: expected 1..4096");
  if (!(o.learning_rate > 0) || o.learning_rate > 1) bad("--lr: expected (0, 1]");
  if (o.warmup < 0) bad("--warmup: expected >= 0");
  if (!(o.checkpoint_minutes > 0)) bad("--checkpoint-minutes: expected > 0");
  if (o.max_minutes < 0) bad("--minutes: expected >= 0");
  if (o.stop_step < 0) bad("--stop-step: expected >= 0");
  if (o.vision_own_loss && !(o.aux_input_weight > 0))
    bad("--vision-own-loss: the vision tower then learns from --aux-input-weight alone, give it > "
        "0");
}

// Linear warmup, then cosine decay to min_learning_rate_ratio at `steps`.
double learning_rate(const TrainOptions& o, std::int64_t step) {
  if (step < o.warmup) return o.learning_rate * (step + 1) / o.warmup;
  const double t = std::min(
      1.0, static_cast<double>(step - o.warmup) / std::max<std::int64_t>(1, o.steps - o.warmup));
  const double r = o.min_learning_rate_ratio;
  return o.learning_rate * (r + (1 - r) * 0.5 * (1 + std::cos(M_PI * t)));
}

WorldOptions world_options(const TrainOptions& o) {
  return world_options_for_size(o.image_size);
}

// The texts the tokenizer is trained on: what the chat template writes around a turn, every
// answer word, and the questions and answers of the first samples of the training stream.
std::vector<std::string> tokenizer_corpus(const TrainOptions& o) {
  std::vector<std::string> texts = {"system\nYou are a helpful assistant.", "user\n",
                                    "assistant\n"};
  for (const auto& w : answer_words()) {
    for (int i = 0; i < 4; ++i) {  // often enough that every pair of its letters merges
      texts.push_back(w);
      texts.push_back(" " + w);
    }
  }
  const WorldOptions world = world_options(o);
  for (std::uint64_t i = 0; i < 4000; ++i) {
    const Sample s = sample(o.data_seed, i, world);
    texts.push_back(s.question.question);
    texts.push_back(s.question.answer);
  }
  return texts;
}

struct Param {
  std::string name;
  at::Tensor value, m, v;
  bool decay = false;
};

class Trainer {
 public:
  Trainer(const TrainOptions& o, const std::function<void(const std::string&)>& say)
      : o_(o), say_(say) {}

  TrainResult run(const std::function<void(const StepReport&)>& on_step);

 private:
  void prepare_out_dir();
  void load();
  at::Tensor batch_loss(std::int64_t step, StepReport& report);
  void adamw(double lr);
  // The final norm and the LM head over hidden states [N, H], in plain differentiable ops.
  at::Tensor input_lens(const at::Tensor& h) const;
  // Accuracy of argmax over `group` on the cells whose target is in `group`.
  static double group_accuracy(const at::Tensor& logits, const std::vector<std::int64_t>& targets,
                               const std::vector<std::int64_t>& group);
  void checkpoint(std::int64_t step, double seconds);
  void export_weights(std::int64_t step, double seconds);

  TrainOptions o_;
  std::function<void(const std::string&)> say_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<model::Processor> processor_;
  std::vector<Param> params_;
  std::vector<std::string> export_names_;
  std::int64_t step_ = 0, adam_step_ = 0;
  double trained_seconds_ = 0;
  bool from_state_ = false, from_weights_ = false;
  std::int64_t image_token_ = 0, im_end_ = 0;
  std::map<std::string, std::int64_t> word_ids_;
  std::vector<std::int64_t> colour_ids_, shape_ids_;
};

void Trainer::prepare_out_dir() {
  const fs::path out(o_.out_dir);
  if (fs::exists(out / "config.json")) return;
  if (fs::exists(out) && !fs::is_empty(out))
    throw InputError("train-demo --out " + o_.out_dir + ": not empty and not a checkpoint");
  // Made in a temporary folder and renamed, so that a failure leaves no half-made checkpoint.
  const fs::path tmp = o_.out_dir + ".tmp";
  fs::remove_all(tmp);
  const auto config = core::Config::load(o_.config);
  bench::RandomCheckpointOptions r;
  r.seed = o_.init_seed;
  bench::write_random_checkpoint(config, tmp.string(), r);
  BpeTrainOptions bpe;
  // Every word a cell label or a one-word answer uses must be one token (the auxiliary loss
  // predicts them through the LM head).
  for (int i = 0; i < kNumColours; ++i) bpe.single_token_words.push_back(colour_name(Colour(i)));
  for (int i = 0; i < kNumShapes; ++i) bpe.single_token_words.push_back(shape_name(Shape(i)));
  bpe.single_token_words.insert(bpe.single_token_words.end(),
                                {"none", "sign", "top", "bottom", "-left", "-right"});
  train_bpe_tokenizer((tmp / "tokenizer.json").string(), tokenizer_corpus(o_), bpe);
  if (fs::exists(out)) fs::remove(out);
  fs::rename(tmp, out);
  // Not random any more once trained: the marker goes at the first export.
  say_("wrote " + o_.out_dir + ": initial weights (seed " + std::to_string(o_.init_seed) +
       ") and a byte-level BPE tokenizer trained on the world's questions");
}

void Trainer::load() {
  model::LoadOptions lo;
  lo.weights = model::WeightMemory::Resident;
  lo.dtype = c10::ScalarType::Float;
  model_ = model::load_model(o_.out_dir, lo);
  processor_ = model::Processor::load(o_.out_dir);
  const auto& tok = processor_->tokenizer();
  image_token_ = model_->config().get_int("image_token_id", -1);
  im_end_ = processor_->eos_token_ids().at(0);
  std::vector<std::string> words = answer_words();
  words.insert(words.end(), {"top", "bottom", "-left", "-right"});
  for (const auto& w : words) {
    const auto ids = tok.encode_ids(w);
    if (ids.size() == 1) word_ids_[w] = ids[0];
  }
  std::vector<std::string> labels = {"none", "sign"};
  if (o_.aux_position) labels.insert(labels.end(), {"top", "bottom", "-left", "-right"});
  for (int i = 0; i < kNumColours; ++i) labels.push_back(colour_name(Colour(i)));
  for (int i = 0; i < kNumShapes; ++i) labels.push_back(shape_name(Shape(i)));
  for (const auto& w : labels) {
    if (!word_ids_.count(w))
      throw ConfigError(o_.out_dir + "/tokenizer.json: '" + w +
                        "' is not one token; the auxiliary loss needs it");
  }
  for (int i = 0; i < kNumColours; ++i) colour_ids_.push_back(word_ids_.at(colour_name(Colour(i))));
  for (int i = 0; i < kNumShapes; ++i) shape_ids_.push_back(word_ids_.at(shape_name(Shape(i))));
  // One Param per distinct tensor (a tied LM head is the embedding).
  std::set<const void*> seen;
  for (const auto& spec : bench::checkpoint_tensors(model_->config())) {
    export_names_.push_back(spec.name);
    at::Tensor t = model_->weight(spec.name);
    if (!seen.insert(t.data_ptr()).second) continue;
    t.requires_grad_(true);
    params_.push_back({spec.name, t, at::zeros_like(t), at::zeros_like(t), t.dim() >= 2});
  }

  const fs::path state(o_.state_dir);
  const fs::path out(o_.out_dir);
  if (fs::exists(state / "state.json")) {
    const json s = read_json(state / "state.json");
    if (s.at("options") != identity(o_))
      throw InputError(o_.state_dir + "/state.json: made with other options (" +
                       s.at("options").dump() + "); give the same ones or another --state");
    step_ = s.at("step").get<std::int64_t>();
    adam_step_ = s.at("adam_step").get<std::int64_t>();
    trained_seconds_ = s.value("seconds", 0.0);
    const auto ck = core::Checkpoint::open((state / "weights.safetensors").string());
    const auto mom = core::Checkpoint::open((state / "adam.safetensors").string());
    at::NoGradGuard no_grad;
    for (auto& p : params_) {
      p.value.copy_(core::load_tensor(ck, p.name, at::kFloat));
      p.m.copy_(core::load_tensor(mom, "m." + p.name, at::kFloat));
      p.v.copy_(core::load_tensor(mom, "v." + p.name, at::kFloat));
    }
    from_state_ = true;
    say_("resumed from " + o_.state_dir + " at step " + std::to_string(step_) +
         " (weights, optimizer, data position)");
  } else if (fs::exists(out / kTrainingFile)) {
    const json t = read_json(out / kTrainingFile);
    step_ = t.at("steps_done").get<std::int64_t>();
    trained_seconds_ = t.value("seconds", 0.0);
    from_weights_ = true;
    say_("no state in " + o_.state_dir + ": resuming from the bf16 weights of " + o_.out_dir +
         " at step " + std::to_string(step_) + " with a FRESH optimizer (moments lost)");
  }
}

at::Tensor Trainer::batch_loss(std::int64_t step, StepReport& report) {
  const WorldOptions world = world_options(o_);
  const auto& tok = processor_->tokenizer();
  std::vector<std::vector<std::int64_t>> rows;
  std::vector<std::int64_t> answer_lengths;
  std::vector<at::Tensor> pixels, grids;
  // Per cell: the words it predicts (colour, shape, and with aux_position row and column half).
  std::vector<std::vector<std::int64_t>> cell_targets(o_.aux_position ? 4 : 2);
  std::int64_t longest = 0;
  for (std::int64_t j = 0; j < o_.batch; ++j) {
    const Sample s = sample(o_.data_seed, static_cast<std::uint64_t>(step * o_.batch + j), world);
    model::ProcessorRequest req;
    req.prompt = s.question.question;
    req.images.push_back(render(s.scene));
    const auto p = processor_->process(req);
    const at::Tensor ids = p.inputs.input_ids.view({-1});
    std::vector<std::int64_t> row(ids.data_ptr<std::int64_t>(),
                                  ids.data_ptr<std::int64_t>() + ids.numel());
    std::vector<std::int64_t> answer = tok.encode_ids(s.question.answer);
    answer.push_back(im_end_);
    row.insert(row.end(), answer.begin(), answer.end());
    answer_lengths.push_back(static_cast<std::int64_t>(answer.size()));
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(row.size()));
    rows.push_back(std::move(row));
    pixels.push_back(p.inputs.pixel_values);
    grids.push_back(p.inputs.image_grid_thw);
    const auto labels = cell_labels(s.scene);
    const int grid = s.scene.size / 28;
    for (std::size_t c = 0; c < labels.size(); ++c) {
      std::string colour = labels[c].colour, shape = labels[c].shape;
      if (o_.aux_position && colour == "sign" && word_ids_.count(s.scene.sign->word))
        colour = shape = s.scene.sign->word;
      cell_targets[0].push_back(word_ids_.at(colour));
      cell_targets[1].push_back(word_ids_.at(shape));
      if (o_.aux_position) {
        const int row = static_cast<int>(c) / grid, col = static_cast<int>(c) % grid;
        cell_targets[2].push_back(word_ids_.at(2 * row < grid ? "top" : "bottom"));
        cell_targets[3].push_back(word_ids_.at(2 * col < grid ? "-left" : "-right"));
      }
    }
  }
  const std::int64_t b = o_.batch;
  const std::int64_t pad = std::max<std::int64_t>(0, processor_->pad_token_id());
  at::Tensor ids = at::full({b, longest}, pad, at::kLong);
  at::Tensor mask = at::zeros({b, longest}, at::kLong);
  at::Tensor labels = at::full({b, longest}, -100, at::kLong);
  for (std::int64_t j = 0; j < b; ++j) {
    const auto& row = rows[j];
    const std::int64_t n = static_cast<std::int64_t>(row.size()), off = longest - n;
    auto* d = ids.data_ptr<std::int64_t>() + j * longest;
    auto* m = mask.data_ptr<std::int64_t>() + j * longest;
    auto* l = labels.data_ptr<std::int64_t>() + j * longest;
    for (std::int64_t i = 0; i < n; ++i) {
      d[off + i] = row[i];
      m[off + i] = 1;
    }
    for (std::int64_t i = longest - answer_lengths[j]; i < longest; ++i) l[i] = d[i];
  }
  model::ForwardInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.pixel_values = at::cat(pixels);
  in.image_grid_thw = at::cat(grids);
  at::Tensor image_embeds;  // with vision_own_loss: the tower's output, in its own graph
  if (o_.vision_own_loss) {
    const kernels::ReferenceOps reference(true);
    image_embeds = model_->embed_media(in).image_embeds;
    in.image_embeds = image_embeds.detach();
    in.pixel_values = at::Tensor();
  }
  model::ForwardOptions fo;
  fo.autograd = true;
  fo.output_hidden_states = !o_.vision_own_loss && o_.aux_input_weight > 0;
  const model::ForwardOutput out = model_->forward(in, fo);
  const at::Tensor& logits = out.logits;  // [B, S, V]
  const std::int64_t v = logits.size(-1);
  // Token t is predicted at position t - 1.
  const at::Tensor pred = logits.narrow(1, 0, longest - 1).reshape({-1, v});
  const at::Tensor target = labels.narrow(1, 1, longest - 1).reshape({-1});
  const at::Tensor answer_loss =
      at::cross_entropy_loss(pred, target, {}, at::Reduction::Mean, -100);
  // Visual tokens in sequence order are the cells in raster order (one image per row).
  const at::Tensor visual = (ids.view({-1}) == image_token_).nonzero().view({-1});
  const auto n_cells = static_cast<std::int64_t>(cell_targets[0].size());
  if (visual.numel() != n_cells)
    throw Error("train-demo: " + std::to_string(visual.numel()) + " visual tokens against " +
                std::to_string(n_cells) + " cell labels (image size and merge do not match 28 px)");
  // Targets of a cell through one softmax: the mean of their cross-entropies.
  auto cell_loss = [&](const at::Tensor& cell_logits, std::size_t n_targets) {
    at::Tensor sum = at::zeros({}, cell_logits.options());
    for (std::size_t k = 0; k < n_targets; ++k)
      sum = sum + at::cross_entropy_loss(cell_logits, at::tensor(cell_targets[k]));
    return sum / static_cast<double>(n_targets);
  };
  at::Tensor aux_loss = o_.aux_weight * cell_loss(logits.reshape({-1, v}).index_select(0, visual),
                                                  cell_targets.size());
  // At the decoder's input (a logit lens at layer 0). With vision_own_loss only colour and shape:
  // a tower with rotary positions alone cannot tell where in the picture a cell is.
  at::Tensor input_logits;
  if (o_.vision_own_loss) {
    input_logits = input_lens(image_embeds);
  } else if (!out.hidden_states.empty()) {
    const at::Tensor h0 = out.hidden_states.at(0);
    input_logits = input_lens(h0.reshape({-1, h0.size(-1)}).index_select(0, visual));
  }
  if (o_.aux_input_weight > 0)
    aux_loss = aux_loss + o_.aux_input_weight *
                              cell_loss(input_logits, o_.vision_own_loss ? 2 : cell_targets.size());
  {
    at::NoGradGuard no_grad;
    if (input_logits.defined()) {
      report.cell_colour_accuracy = group_accuracy(input_logits, cell_targets[0], colour_ids_);
      report.cell_shape_accuracy = group_accuracy(input_logits, cell_targets[1], shape_ids_);
    }
    const at::Tensor valid = target.ne(-100);
    const at::Tensor hit = pred.argmax(-1).eq(target).logical_and(valid);
    report.answer_accuracy = hit.sum().item<double>() / std::max(1.0, valid.sum().item<double>());
    report.answer_loss = answer_loss.item<double>();
    report.aux_loss = aux_loss.item<double>();
  }
  return answer_loss + aux_loss;
}

double Trainer::group_accuracy(const at::Tensor& logits, const std::vector<std::int64_t>& targets,
                               const std::vector<std::int64_t>& group) {
  const at::Tensor ids = at::tensor(group);
  const at::Tensor t = at::tensor(targets);
  const at::Tensor in_group = at::isin(t, ids);
  const auto n = in_group.sum().item<std::int64_t>();
  if (n == 0) return 0;
  const at::Tensor picked = ids.index_select(0, logits.index_select(1, ids).argmax(-1));
  return picked.eq(t).logical_and(in_group).sum().item<double>() / static_cast<double>(n);
}

at::Tensor Trainer::input_lens(const at::Tensor& h) const {
  const double eps = model_->config().get_float("rms_norm_eps", 1e-6);
  const at::Tensor norm = model_->weight("model.norm.weight");
  const auto names = model_->weight_names();
  const bool head = std::find(names.begin(), names.end(), "lm_head.weight") != names.end();
  const at::Tensor w = model_->weight(head ? "lm_head.weight" : "model.embed_tokens.weight");
  const at::Tensor hn = h * at::rsqrt(h.pow(2).mean(-1, true) + eps) * norm;
  return at::matmul(hn, w.t());
}

// AdamW (Loshchilov & Hutter), decoupled weight decay on matrices only; gradients clipped to a
// global norm first.
void Trainer::adamw(double lr) {
  at::NoGradGuard no_grad;
  double norm2 = 0;
  for (auto& p : params_) {
    if (p.value.grad().defined()) norm2 += p.value.grad().pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(norm2);
  const double scale = o_.clip_norm > 0 && norm > o_.clip_norm ? o_.clip_norm / norm : 1.0;
  ++adam_step_;
  const double c1 = 1 - std::pow(kBeta1, static_cast<double>(adam_step_));
  const double c2 = 1 - std::pow(kBeta2, static_cast<double>(adam_step_));
  for (auto& p : params_) {
    at::Tensor g = p.value.grad();
    if (!g.defined()) continue;
    if (scale != 1.0) g = g * scale;
    p.m.mul_(kBeta1).add_(g, 1 - kBeta1);
    p.v.mul_(kBeta2).addcmul_(g, g, 1 - kBeta2);
    if (p.decay) p.value.mul_(1 - lr * o_.weight_decay);
    const at::Tensor denom = (p.v / c2).sqrt_().add_(kEps);
    p.value.addcdiv_(p.m, denom, -lr / c1);
    p.value.mutable_grad() = at::Tensor();
  }
}

void Trainer::checkpoint(std::int64_t step, double seconds) {
  fs::create_directories(o_.state_dir);
  const fs::path state(o_.state_dir);
  std::vector<std::pair<std::string, at::Tensor>> w, mom;
  for (const auto& p : params_) {
    w.push_back({p.name, p.value.detach()});
    mom.push_back({"m." + p.name, p.m});
    mom.push_back({"v." + p.name, p.v});
  }
  save_atomic(state / "weights.safetensors", w);
  save_atomic(state / "adam.safetensors", mom);
  // Written last: a state.json always describes complete tensor files.
  write_json_atomic(
      state / "state.json",
      {{"step", step}, {"adam_step", adam_step_}, {"seconds", seconds}, {"options", identity(o_)}});
  export_weights(step, seconds);
}

void Trainer::export_weights(std::int64_t step, double seconds) {
  const fs::path out(o_.out_dir);
  std::vector<std::pair<std::string, at::Tensor>> w;
  for (const auto& name : export_names_)
    w.push_back({name, model_->weight(name).detach().to(at::kBFloat16)});
  save_atomic(out / "model.safetensors", w);
  json config = read_json(out / "config.json");
  config.erase(bench::kRandomWeightsKey);
  config["torch_dtype"] = "bfloat16";
  write_json_atomic(out / "config.json", config);
  json t = identity(o_);
  t["steps_done"] = step;
  t["seconds"] = seconds;
  t["note"] =
      "glimpse train-demo: a Qwen2-VL-architecture model trained on the synthetic world of "
      "glimpse/demo/world.h; weights stored in bf16";
  write_json_atomic(out / kTrainingFile, t);
}

TrainResult Trainer::run(const std::function<void(const StepReport&)>& on_step) {
  prepare_out_dir();
  load();
  TrainResult result;
  result.start_step = step_;
  result.resumed_from_state = from_state_;
  result.resumed_from_weights = from_weights_;
  const auto t0 = Clock::now();
  auto last_checkpoint = t0;
  auto minutes_since = [](Clock::time_point a) {
    return std::chrono::duration<double>(Clock::now() - a).count() / 60;
  };
  const std::int64_t end = o_.stop_step > 0 ? std::min(o_.stop_step, o_.steps) : o_.steps;
  bool dirty = false;
  while (step_ < end) {
    if (o_.max_minutes > 0 && minutes_since(t0) >= o_.max_minutes) break;
    const auto s0 = Clock::now();
    StepReport r;
    const at::Tensor loss = batch_loss(step_, r);
    loss.backward();
    r.learning_rate = learning_rate(o_, step_);
    adamw(r.learning_rate);
    ++step_;
    dirty = true;
    r.step = step_;
    r.steps = o_.steps;
    r.loss = loss.item<double>();
    r.seconds = std::chrono::duration<double>(Clock::now() - s0).count();
    if (!std::isfinite(r.loss))
      throw Error("train-demo: the loss is not finite at step " + std::to_string(step_) +
                  "; lower --lr (the last checkpoint is intact)");
    if (on_step) on_step(r);
    if (minutes_since(last_checkpoint) >= o_.checkpoint_minutes) {
      checkpoint(step_, trained_seconds_ + minutes_since(t0) * 60);
      say_("checkpoint at step " + std::to_string(step_) + " in " + o_.state_dir);
      last_checkpoint = Clock::now();
      dirty = false;
    }
  }
  result.seconds = minutes_since(t0) * 60;
  if (dirty) checkpoint(step_, trained_seconds_ + result.seconds);
  result.end_step = step_;
  for (auto& p : params_) p.value.requires_grad_(false);
  return result;
}

}  // namespace

TrainResult train_demo(const TrainOptions& options,
                       const std::function<void(const StepReport&)>& on_step,
                       const std::function<void(const std::string&)>& on_message) {
  check_options(options);
  Trainer t(
      options, on_message ? on_message : [](const std::string&) {});
  return t.run(on_step);
}

}  // namespace glimpse::demo
