#include "glimpse/generate/session.h"

#include <ATen/ATen.h>

#include <set>

#include "glimpse/core/error.h"

namespace glimpse::generate {
namespace {

// Counters shared by a session and everything forked, stacked or split from it, so that a
// report counts the prefills of the whole family once.
struct Counters {
  std::int64_t prefills = 0, appends = 0, steps = 0, forks = 0;
};

const auto kI64 = at::TensorOptions().dtype(at::kLong);

// A layout with `extra` slots of padding added on the right (text-like, original index -1).
model::TokenLayout pad_layout(const model::TokenLayout& l, std::int64_t extra) {
  if (extra == 0 || !l.defined()) return l;
  model::TokenLayout out;
  out.modality = at::constant_pad_nd(l.modality, {0, extra}, 0);
  out.media_index = at::constant_pad_nd(l.media_index, {0, extra}, -1);
  out.grid = at::constant_pad_nd(l.grid, {0, 0, 0, extra}, -1);
  out.positions = at::constant_pad_nd(l.positions, {0, extra}, 1);
  out.original_index = at::constant_pad_nd(l.original_index, {0, extra}, -1);
  return out;
}

model::TokenLayout cat_layouts(const std::vector<model::TokenLayout>& parts, std::int64_t dim) {
  auto cat = [&](at::Tensor model::TokenLayout::*field, std::int64_t d) {
    std::vector<at::Tensor> ts;
    for (const auto& p : parts) ts.push_back(p.*field);
    return at::cat(ts, d);
  };
  model::TokenLayout out;
  // Sequence axis: dim 1 of [B, S] fields and dim 2 of positions [P, B, S]; batch axis: 0 and 1.
  out.modality = cat(&model::TokenLayout::modality, dim);
  out.media_index = cat(&model::TokenLayout::media_index, dim);
  out.grid = cat(&model::TokenLayout::grid, dim);
  out.positions = cat(&model::TokenLayout::positions, dim + 1);
  out.original_index = cat(&model::TokenLayout::original_index, dim);
  return out;
}

model::TokenLayout layout_row(const model::TokenLayout& l, std::int64_t r) {
  if (!l.defined()) return l;
  model::TokenLayout out;
  out.modality = l.modality.narrow(0, r, 1);
  out.media_index = l.media_index.narrow(0, r, 1);
  out.grid = l.grid.narrow(0, r, 1);
  out.positions = l.positions.narrow(1, r, 1);
  out.original_index = l.original_index.narrow(0, r, 1);
  return out;
}

bool has_media(const model::ForwardInputs& in) {
  return in.pixel_values.defined() || in.pixel_values_videos.defined() ||
         in.image_embeds.defined() || in.video_embeds.defined();
}

}  // namespace

struct Session::Impl {
  model::Model* model = nullptr;
  model::ForwardHooks* hooks = nullptr;
  model::DecodeState state;
  at::Tensor ids, lengths;  // [B, L], [B]
  at::Tensor last_logits, last_hidden;
  bool keep_hidden = false;
  model::TokenLayout layout;
  std::int64_t images = 0, videos = 0;
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();

  std::int64_t batch() const { return state.batch(); }

  // One cached pass over `in` (checked by the model); updates everything the session tracks.
  at::Tensor pass(const model::ForwardInputs& in, bool record_layout) {
    if (!in.input_ids.defined() || in.input_ids.dim() != 2) {
      throw InputError("input_ids: expected [batch, sequence]");
    }
    if (has_media(in)) {
      const bool video = in.pixel_values_videos.defined() || in.video_embeds.defined();
      const bool image = in.pixel_values.defined() || in.image_embeds.defined();
      if ((image && !model->accepts_images()) || (video && !model->accepts_videos())) {
        throw InputError(std::string(video && !model->accepts_videos() ? "videos" : "images") +
                         ": " + model->architecture() + " has no vision tower for them");
      }
    }
    const at::Tensor mask = in.attention_mask.defined() ? in.attention_mask.to(at::kLong)
                                                        : at::ones(in.input_ids.sizes(), kI64);
    if (mask.sizes() != in.input_ids.sizes()) {
      throw InputError("attention_mask: shape " + c10::str(mask.sizes()) +
                       " differs from input_ids " + c10::str(in.input_ids.sizes()));
    }
    const bool first = state.past_length() == 0;
    if (!first) {
      if (in.input_ids.size(0) != batch()) {
        throw InputError("input_ids: " + std::to_string(in.input_ids.size(0)) +
                         " sequences, the session holds " + std::to_string(batch()));
      }
      // Padding of an appended chunk goes on the left, so each sequence's last token is last.
      if (in.input_ids.size(1) > 1 && !mask.select(1, mask.size(1) - 1).eq(1).all().item<bool>()) {
        throw InputError("attention_mask: an appended chunk may be padded on the left only");
      }
    }
    // Positions the model was trained for: the logical position after this chunk.
    const at::Tensor adding = mask.sum(1);
    const std::int64_t after =
        ((first ? at::zeros_like(adding) : lengths) + adding).max().item<std::int64_t>();
    if (after > model->max_positions()) {
      throw InputError("input_ids: " + std::to_string(in.input_ids.size(1)) +
                       " more tokens would take the session to " + std::to_string(after) +
                       ", past the model's max_position_embeddings " +
                       std::to_string(model->max_positions()));
    }
    if (hooks != nullptr) hooks->on_inputs(in, first ? at::Tensor() : ids);
    model::ForwardOptions o;
    o.last_logits_only = true;
    o.hooks = hooks;
    std::vector<std::int64_t> cached;
    for (std::int64_t l = 0; l < state.cache->num_layers(); ++l)
      cached.push_back(state.cache->length(l));
    model::ForwardOutput out;
    try {
      out = model->forward_cached(in, o, state);
    } catch (...) {
      // Inputs are checked before the cache changes; a pass that failed after some layer
      // appended to it leaves the state in no defined shape, and the session closes.
      for (std::int64_t l = 0; l < state.cache->num_layers(); ++l) {
        if (state.cache->length(l) != cached[static_cast<std::size_t>(l)]) {
          state = model::DecodeState();
          break;
        }
      }
      throw;
    }
    last_logits = out.logits.select(1, out.logits.size(1) - 1);
    last_hidden =
        keep_hidden ? out.last_hidden.select(1, out.last_hidden.size(1) - 1) : at::Tensor();
    const at::Tensor new_ids = in.input_ids.to(at::kLong);
    ids = first ? new_ids : at::cat({ids, new_ids}, 1);
    lengths = first ? adding : lengths + adding;
    if (record_layout) {
      model::TokenLayout chunk = out.input_layout;
      if (chunk.defined()) {
        // Media indices continue the session's count.
        const at::Tensor is_image = chunk.modality.eq(static_cast<int>(model::Modality::Image));
        const at::Tensor is_video = chunk.modality.eq(static_cast<int>(model::Modality::Video));
        auto count = [&](const at::Tensor& is) {
          return is.any().item<bool>()
                     ? chunk.media_index.masked_select(is).max().item<std::int64_t>() + 1
                     : std::int64_t{0};
        };
        const std::int64_t new_images = count(is_image), new_videos = count(is_video);
        chunk.media_index =
            chunk.media_index + is_image.to(at::kLong) * images + is_video.to(at::kLong) * videos;
        images += new_images;
        videos += new_videos;
        layout = first ? chunk : cat_layouts({layout, chunk}, 1);
      }
    }
    return last_logits;
  }
};

Session::Session(model::Model& model, model::ForwardHooks* hooks)
    : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  impl_->hooks = hooks;
  impl_->state = model.new_state(1);
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Session::Impl& Session::impl(const char* what) const {
  if (!impl_ || !impl_->state.cache) {
    throw InputError(std::string("session: ") + what +
                     " on a closed session (closed, stacked, split, or a pass failed)");
  }
  return *impl_;
}

at::Tensor Session::prefill(const model::ForwardInputs& inputs) {
  Impl& s = impl("prefill");
  if (s.state.past_length() > 0) {
    throw InputError("session: prefill on a session that holds a prompt already (use append)");
  }
  const at::Tensor logits = s.pass(inputs, /*record_layout=*/true);
  ++s.counters->prefills;
  return logits;
}

at::Tensor Session::append(const std::vector<std::int64_t>& ids) {
  Impl& s = impl("append");
  if (ids.empty()) throw InputError("session: append of no tokens");
  if (s.state.past_length() == 0) throw InputError("session: append before prefill");
  model::ForwardInputs in;
  in.input_ids = at::tensor(ids, kI64).view({1, -1}).expand({s.batch(), -1}).contiguous();
  return append(in);
}

at::Tensor Session::append(const model::ForwardInputs& inputs) {
  Impl& s = impl("append");
  if (s.state.past_length() == 0) throw InputError("session: append before prefill");
  const at::Tensor logits = s.pass(inputs, /*record_layout=*/true);
  ++s.counters->appends;
  return logits;
}

at::Tensor Session::step(const at::Tensor& tokens) {
  Impl& s = impl("step");
  if (s.state.past_length() == 0) throw InputError("session: step before prefill");
  if (!tokens.defined() || tokens.dim() != 1 || tokens.size(0) != s.batch()) {
    throw InputError("session step: expected one token per sequence [" + std::to_string(s.batch()) +
                     "], found " +
                     (tokens.defined() ? c10::str(tokens.sizes()) : std::string("none")));
  }
  model::ForwardInputs in;
  in.input_ids = tokens.to(at::kLong).view({s.batch(), 1});
  const at::Tensor logits = s.pass(in, /*record_layout=*/false);
  ++s.counters->steps;
  return logits;
}

std::vector<Session> Session::fork(std::int64_t n) {
  Impl& s = impl("fork");
  if (n < 1) throw InputError("session: fork of " + std::to_string(n) + " (expected >= 1)");
  auto states = s.state.fork(n);  // checks batch 1 and a prefix
  s.counters->forks += n;
  std::vector<Session> out;
  for (auto& st : states) {
    auto c = std::make_unique<Impl>();
    c->model = s.model;
    c->hooks = s.hooks;
    c->state = std::move(st);
    c->ids = s.ids;  // never written in place
    c->lengths = s.lengths;
    c->last_logits = s.last_logits;
    c->last_hidden = s.last_hidden;
    c->keep_hidden = s.keep_hidden;
    c->layout = s.layout;
    c->images = s.images;
    c->videos = s.videos;
    c->counters = s.counters;
    out.push_back(Session(std::move(c)));
  }
  return out;
}

Session Session::stack(std::vector<Session> sessions) {
  if (sessions.empty()) throw InputError("session: stack of no sessions");
  std::vector<model::DecodeState> states;
  std::int64_t longest_ids = 0, longest_layout = 0;
  for (auto& x : sessions) {
    Impl& s = x.impl("stack");
    if (s.model != sessions.front().impl_->model) {
      throw InputError("session: stack of sessions on different models");
    }
    longest_ids = std::max(longest_ids, s.ids.size(1));
    if (s.layout.defined()) longest_layout = std::max(longest_layout, s.layout.length());
  }
  auto out = std::make_unique<Impl>();
  const Impl& first = *sessions.front().impl_;
  out->model = first.model;
  out->hooks = first.hooks;
  out->keep_hidden = first.keep_hidden;
  out->counters = first.counters;
  std::vector<at::Tensor> ids, lengths, logits, hidden;
  std::vector<model::TokenLayout> layouts;
  bool all_hidden = true, all_layouts = true;
  std::set<const Counters*> families{out->counters.get()};
  for (auto& x : sessions) {
    Impl& s = *x.impl_;
    const std::int64_t pad = longest_ids - s.ids.size(1);
    ids.push_back(pad == 0 ? s.ids : at::cat({s.ids.narrow(1, 0, 1).expand({-1, pad}), s.ids}, 1));
    lengths.push_back(s.lengths);
    logits.push_back(s.last_logits);
    all_hidden = all_hidden && s.last_hidden.defined();
    if (s.last_hidden.defined()) hidden.push_back(s.last_hidden);
    all_layouts = all_layouts && s.layout.defined();
    if (s.layout.defined())
      layouts.push_back(pad_layout(s.layout, longest_layout - s.layout.length()));
    out->images = std::max(out->images, s.images);
    out->videos = std::max(out->videos, s.videos);
    if (families.insert(s.counters.get()).second) {
      // Sessions of another family (stacked without sharing a prefix): their work counts too.
      out->counters->prefills += s.counters->prefills;
      out->counters->appends += s.counters->appends;
    }
    states.push_back(std::move(s.state));
  }
  out->state = model::DecodeState::stack(std::move(states));
  out->ids = at::cat(ids, 0);
  out->lengths = at::cat(lengths, 0);
  out->last_logits = at::cat(logits, 0);
  if (all_hidden) out->last_hidden = at::cat(hidden, 0);
  if (all_layouts) out->layout = cat_layouts(layouts, 0);
  for (auto& x : sessions) x.impl_.reset();
  return Session(std::move(out));
}

std::vector<Session> Session::split() {
  Impl& s = impl("split");
  std::vector<Session> out;
  for (std::int64_t r = 0; r < s.batch(); ++r) {
    auto c = std::make_unique<Impl>();
    c->model = s.model;
    c->hooks = s.hooks;
    c->state = s.state.row(r);
    c->ids = s.ids.narrow(0, r, 1).clone();
    c->lengths = s.lengths.narrow(0, r, 1).clone();
    c->last_logits = s.last_logits.narrow(0, r, 1);
    if (s.last_hidden.defined()) c->last_hidden = s.last_hidden.narrow(0, r, 1);
    c->keep_hidden = s.keep_hidden;
    c->layout = layout_row(s.layout, r);
    c->images = s.images;
    c->videos = s.videos;
    c->counters = s.counters;
    out.push_back(Session(std::move(c)));
  }
  impl_.reset();
  return out;
}

void Session::close() {
  impl_.reset();
}
bool Session::open() const {
  return impl_ && impl_->state.cache;
}
std::int64_t Session::batch() const {
  return impl("batch").batch();
}
model::Model& Session::model() const {
  return *impl("model").model;
}
model::ForwardHooks* Session::hooks() const {
  return impl("hooks").hooks;
}
void Session::set_hooks(model::ForwardHooks* hooks) {
  impl("set_hooks").hooks = hooks;
}
const at::Tensor& Session::ids() const {
  return impl("ids").ids;
}
const at::Tensor& Session::last_logits() const {
  return impl("last_logits").last_logits;
}
const at::Tensor& Session::last_hidden() const {
  return impl("last_hidden").last_hidden;
}
void Session::keep_hidden(bool on) {
  impl("keep_hidden").keep_hidden = on;
}
at::Tensor Session::lengths() const {
  return impl("lengths").lengths;
}
at::Tensor Session::next_positions() const {
  return impl("next_positions").state.next_position;
}
std::int64_t Session::images() const {
  return impl("images").images;
}
std::int64_t Session::videos() const {
  return impl("videos").videos;
}
const model::TokenLayout& Session::layout() const {
  return impl("layout").layout;
}
model::DecodeState& Session::state() {
  return impl("state").state;
}

SessionStats Session::stats() const {
  const Impl& s = impl("stats");
  SessionStats st;
  st.prefills = s.counters->prefills;
  st.appends = s.counters->appends;
  st.steps = s.counters->steps;
  st.forks = s.counters->forks;
  st.bytes_shared = s.state.cache->bytes_shared();
  st.bytes_own = s.state.cache->bytes_held() - st.bytes_shared;
  st.bytes_logical = s.state.cache->bytes_logical();
  return st;
}

std::int64_t kv_bytes_held(const std::vector<const Session*>& sessions) {
  std::vector<const model::KVCache*> caches;
  for (const Session* s : sessions) {
    if (s != nullptr && s->open()) caches.push_back(const_cast<Session*>(s)->state().cache.get());
  }
  return model::kv_bytes_held(caches);
}

}  // namespace glimpse::generate
