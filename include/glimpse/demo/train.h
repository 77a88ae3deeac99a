#pragma once

// Training the demo model (glimpse train-demo): a Qwen2-VL-architecture checkpoint, small enough
// to train on a laptop CPU, learns the synthetic world of glimpse/demo/world.h through the
// autograd path of the model itself (ForwardOptions::autograd), so that what is trained is
// exactly what glimpse runs and ships.
//
// The loss is the answer's cross-entropy plus an auxiliary one from step 0: every visual token
// predicts, through the tied LM head, the colour and shape words of the 28-px cell it covers
// ("none" for background), its half of the picture in each direction and a sign's word, both at
// the decoder's input and at its output. Without it a model this small learns colour and
// counting but stays at chance on shape and position (a Python probe of this recipe, issue 21; a
// run with the last-layer colour/shape loss alone stayed at chance on shape, position and
// exists after 4400 steps, docs/DEMO_MODEL.md).
//
// Resumable: every `checkpoint_minutes` the weights (fp32), the AdamW moments and the step go to
// `state_dir` (written to a temporary name, then renamed), and a run with the same options
// continues from there with the same data stream and learning rate, giving the weights an
// uninterrupted run gives. Without a state but with a trained `out_dir`, training resumes from
// its (bf16) weights with a fresh optimizer and says so.

#include <cstdint>
#include <functional>
#include <string>

namespace glimpse::demo {

struct TrainOptions {
  std::string config;     // config.json of the architecture (examples/configs/shapes-qwen2-vl.json)
  std::string out_dir;    // the checkpoint folder written (weights in bf16)
  std::string state_dir;  // resumable state (keep it out of git)
  std::uint64_t data_seed = 1;  // the training stream of world samples
  std::uint64_t init_seed = 0;  // initial weights
  int image_size = 168;
  std::int64_t steps = 8000;  // the learning-rate schedule's length
  std::int64_t batch = 16;
  double learning_rate = 1e-3;
  std::int64_t warmup = 100;
  double min_learning_rate_ratio = 0.1;  // cosine decay to this fraction
  double weight_decay = 0.01;
  double clip_norm = 1.0;
  double aux_weight = 1.0;  // the per-cell loss on the last layer's logits
  // The same cells read at the decoder's input (the merger's output through the final norm and
  // the tied head, a logit lens at layer 0): visual tokens that look like the words of their cell
  // from the first layer on, which the question's words can find by attention.
  double aux_input_weight = 1.0;
  // Cells also predict where they are ("top"/"bottom" and "-left"/"-right", the two tokens of a
  // position answer), and sign cells the sign's word instead of "sign".
  bool aux_position = true;
  // The vision tower (and merger) learn from the input-level cell loss alone, on the colour and
  // shape (or sign word) of each cell; the decoder gets the image embeddings detached and learns
  // from the answer and the last-layer cell loss. Measured (docs/DEMO_MODEL.md): with the answer's
  // gradient also in the tower, cell shape read at the decoder's input sat at 33% (the majority
  // class) for 3300 steps while colour reached 100%; with the cell loss alone it rose from the
  // first hundred steps.
  bool vision_own_loss = true;
  double checkpoint_minutes = 5;
  // Stop after this many minutes (0: run to `steps`), or once this many steps are done (0: run
  // to `steps`); the state is saved either way and a later run continues.
  double max_minutes = 0;
  std::int64_t stop_step = 0;
};

struct StepReport {
  std::int64_t step = 0;  // steps done
  std::int64_t steps = 0;
  double loss = 0, answer_loss = 0, aux_loss = 0;
  double answer_accuracy = 0;  // teacher-forced token accuracy of the batch's answers
  // On cells an object covers, read at the decoder's input (final norm and LM head over the
  // visual tokens) among the colour words and among the shape words: what the vision side knows.
  double cell_colour_accuracy = 0, cell_shape_accuracy = 0;
  double learning_rate = 0;
  double seconds = 0;  // of this step
};

struct TrainResult {
  std::int64_t start_step = 0, end_step = 0;
  bool resumed_from_state = false;
  bool resumed_from_weights = false;  // a fresh optimizer on out_dir's weights
  double seconds = 0;
};

// Runs training; `on_step` (optional) sees every step, `on_message` lines worth telling the user
// (resumed from where, checkpoints written). Throws InputError/ConfigError naming the option or
// file.
TrainResult train_demo(const TrainOptions& options,
                       const std::function<void(const StepReport&)>& on_step = {},
                       const std::function<void(const std::string&)>& on_message = {});

}  // namespace glimpse::demo
