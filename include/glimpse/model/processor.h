#pragma once

// The processor: a request (chat messages or a prompt, images, videos) to the tensors the model
// takes, as the reference processors build them (transformers 4.50 processing_qwen2_vl.py
// Qwen2VLProcessor.__call__, processing_qwen2_5_vl.py, processing_llava.py LlavaProcessor):
// the chat template renders the prompt with one placeholder per image or video, the image
// processor makes the pixel tensors, each placeholder is expanded to the number of tokens its
// grid gives, and the result is tokenized. The token layout (DESIGN.md section 3) is computed
// from the expanded ids, the same one the model builds at prefill.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glimpse/model/model.h"
#include "glimpse/model/token_layout.h"
#include "glimpse/text/chat_template.h"
#include "glimpse/vision/image.h"

namespace glimpse::text {
class Tokenizer;
}

namespace glimpse::model {

// One video of a request: a file sampled as qwen-vl-utils fetch_video does (Qwen), or frames
// sampled already, at `fps` frames per second (the `fps` the reference processor receives).
// Give exactly one of `path` and `frames`.
struct VideoInput {
  std::string path;
  std::vector<vision::Image> frames;
  double fps = 2.0;
  // qwen-vl-utils keys for a file: sampling rate and frame limits (0: the defaults).
  double sample_fps = 0;
  std::int64_t nframes = 0;
};

// Bounds a request must keep, checked before the work they bound (a service facing untrusted
// requests lowers them). The defaults admit what the reference admits.
struct ProcessorLimits {
  // Pixels (width * height) of each image and each video frame given or decoded; the default is
  // PIL's decompression-bomb limit (vision::kMaxImagePixels).
  std::int64_t max_image_pixels = 178956970;
  // Frames of each video after sampling; 768 is qwen-vl-utils' FPS_MAX_FRAMES, the most its
  // sampler picks.
  std::int64_t max_video_frames = 768;
  // Tokens of the prompt after the placeholders are expanded; 0: no bound here (a Session still
  // refuses more than the model's max_position_embeddings).
  std::int64_t max_tokens = 0;
};

struct ProcessorRequest {
  // Either messages (image and video parts in the order of `images` and `videos`) ...
  std::vector<text::ChatMessage> messages;
  // ... or a prompt: one user turn with the images, then the videos, then this text (the order of
  // the model cards' examples). With ChatFamily::Raw the prompt is used as it is and must already
  // hold the family's placeholders (one per image or video, unexpanded).
  std::string prompt;
  std::vector<vision::Image> images;
  std::vector<VideoInput> videos;
  text::ChatOptions chat;
  // Overrides the template recognised in the checkpoint (Raw: no template).
  std::optional<text::ChatFamily> family;
  ProcessorLimits limits;
};

struct ProcessedInputs {
  // input_ids [B, S], attention_mask [B, S] (0 on left padding), pixel tensors and grids of every
  // row's media in row order; B = 1 for process().
  ForwardInputs inputs;
  TokenLayout layout;  // of input_ids, as the model builds it at prefill
  // Per row: the rendered prompt, placeholders not expanded.
  std::vector<std::string> prompts;
  // Per image and video (row order): the size (height, width) in pixels of the picture the model
  // saw, after resizing, so that a map on the merged-patch grid can be laid onto the original.
  std::vector<std::pair<std::int64_t, std::int64_t>> image_sizes, video_sizes;
};

// The rectangle of an original picture, in its pixels, that a medium's patch grid covers (x1, y1
// exclusive). It may reach outside the picture (LLaVA's pad-to-square) or cover only part of it
// (a centre crop).
struct GridPlacement {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  static GridPlacement whole(const vision::Image& picture);
};

class Processor {
 public:
  virtual ~Processor();
  // The processor of a checkpoint folder (tokenizer, chat template, preprocessor_config.json,
  // config.json, generation_config.json), chosen by `architectures[0]`, else `model_type`, as
  // load_model chooses the model. Throws UnsupportedError naming the known models.
  static std::unique_ptr<Processor> load(const std::string& dir);

  // One request (batch 1). Throws InputError naming the problem.
  virtual ProcessedInputs process(const ProcessorRequest& request) const = 0;
  // Several requests as one batch, left padded with pad_token_id() (the reference processors
  // called with padding=True and padding_side="left"); media tensors are concatenated in row
  // order and the layout is that of the padded batch.
  ProcessedInputs process_batch(const std::vector<ProcessorRequest>& requests) const;

  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  // The checkpoint's template family (a request's `family` overrides it). Raw when the
  // checkpoint has no recognised template; its requests must then set `family`.
  text::ChatFamily chat_family() const { return chat_family_; }
  // Token ids that end a generation (generation_config.json eos_token_id, else the tokenizer's).
  std::vector<std::int64_t> eos_token_ids() const { return eos_token_ids_; }
  // The tokenizer's pad token, else generation_config.json / config.json pad_token_id; -1: none.
  std::int64_t pad_token_id() const { return pad_token_id_; }
  // Where the patch grid of a picture of `width` x `height` lies on it (heatmaps are drawn
  // there): the whole picture for processors that only resize (Qwen's smart_resize).
  virtual GridPlacement grid_placement(int width, int height) const;

 protected:
  // Loads what every family shares: the tokenizer, the chat template (none: Raw only), the eos
  // and pad ids.
  explicit Processor(const std::string& dir);

  // The prompt of a request, with one `image_token` / `video_token` placeholder per image and
  // video (checked). Throws InputError.
  std::string render(const ProcessorRequest& request, const std::string& image_token,
                     const std::string& video_token) const;
  // Tokenizes an expanded prompt as the reference processor calls the tokenizer
  // (add_special_tokens=True): input_ids [1, S] and attention_mask of ones. Throws InputError
  // past `limits.max_tokens`.
  void tokenize(const std::string& expanded, ForwardInputs& inputs,
                const ProcessorLimits& limits = {}) const;
  // InputError naming `what` and ProcessorLimits::max_video_frames when a sampled video has more
  // frames than the request allows.
  static void check_frames(std::size_t frames, const ProcessorLimits& limits,
                           const std::string& what);
  // InputError naming `what` ("image 1") for an empty image or a buffer of the wrong size.
  static void check_image(const vision::Image& image, const std::string& what);
  // The layout the model builds at prefill for `inputs` (any batch, left padding allowed).
  virtual TokenLayout token_layout(const ForwardInputs& inputs) const = 0;

 private:
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  text::ChatFamily chat_family_ = text::ChatFamily::Raw;
  std::string template_error_;  // why the checkpoint has no usable template, when it has none
  std::vector<std::int64_t> eos_token_ids_;
  std::int64_t pad_token_id_ = -1;
};

}  // namespace glimpse::model
