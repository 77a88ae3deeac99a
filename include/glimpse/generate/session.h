#pragma once

// A conversation state that outlives one generation: the model's KV cache, the positions, the
// token ids and layout of everything passed so far. Prefill once, then append text or media after
// the cache, fork candidates that share the prefix's KV bytes, and decode several forks in one
// batched forward per step.
//
//   Session s(model);
//   s.prefill(processed.inputs);               // media + prompt, once
//   auto forks = s.fork(4);                    // 4 sessions reading the same prefix
//   forks[i].append(question_ids[i]);          // each its own follow-up
//   Session batch = Session::stack(std::move(forks));  // decoded together
//
// A Session is not copyable (its cache is not); it is movable. Use from one thread at a time.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "glimpse/model/model.h"

namespace glimpse::generate {

// KV memory and work of a session; a report's "session" object.
struct SessionStats {
  std::int64_t prefills = 0;  // full prompt prefills run by this session (and what it came from)
  std::int64_t appends = 0;   // chunks appended after the cache
  std::int64_t steps = 0;     // decode steps (one token per sequence each)
  std::int64_t forks = 0;     // sessions forked from this one or its ancestors
  std::int64_t bytes_shared = 0;   // KV bytes of the prefix read by forks (held once)
  std::int64_t bytes_own = 0;      // KV bytes this session holds alone (its tail)
  std::int64_t bytes_logical = 0;  // what a dense per-sequence cache of the same entries holds
};

class Session {
 public:
  // An empty session on `model` (not owned; must outlive the session). `hooks` (not owned) are
  // the test-time methods of every pass; nullptr runs the plain model.
  explicit Session(model::Model& model, model::ForwardHooks* hooks = nullptr);
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  // The prompt of B sequences (left padding allowed) with its media. Returns the logits of each
  // sequence's last position [B, V] (the model's dtype). Once per session.
  at::Tensor prefill(const model::ForwardInputs& inputs);
  // Text after the cache, the same ids for every sequence (a second user turn, "Answer:").
  at::Tensor append(const std::vector<std::int64_t>& ids);
  // A chunk after the cache: input_ids [B, S] (attention_mask: padding on the left only) and any
  // new media (pixel tensors and grids, or embeds), placed with the positions the reference
  // gives the whole conversation. Media on a model without a vision tower is an error.
  at::Tensor append(const model::ForwardInputs& inputs);
  // A decode step: one token per sequence ([B] int64).
  at::Tensor step(const at::Tensor& tokens);

  // `n` sessions continuing this one (batch 1) that read its KV prefix in place: memory grows by
  // their tails only. This session stays usable and reads the same prefix.
  std::vector<Session> fork(std::int64_t n);
  // One session of the sequences of `sessions` (forks of one session, in order) that decodes
  // them in one batched forward per step; sequences of different lengths are padded and masked.
  // The inputs are closed.
  static Session stack(std::vector<Session> sessions);
  // One session per sequence (the shared prefix stays shared). This session is closed.
  std::vector<Session> split();
  // Releases the cache; any later use is an error.
  void close();

  bool open() const;
  std::int64_t batch() const;
  model::Model& model() const;
  model::ForwardHooks* hooks() const;
  void set_hooks(model::ForwardHooks* hooks);
  // Every token so far per sequence [B, L] int64, as the reference's generate sees input_ids:
  // the prompt (with its padding), appended chunks, fed decode tokens. Sequences stacked with
  // different lengths are left-padded with their own first token.
  const at::Tensor& ids() const;
  // Logits of each sequence's last position after the latest pass [B, V].
  const at::Tensor& last_logits() const;
  // The last position's hidden state after the final norm [B, H] (the residual stream the LM
  // head reads), when keep_hidden(true) was set before the pass.
  const at::Tensor& last_hidden() const;
  void keep_hidden(bool on);
  // Tokens passed so far per sequence, padding excluded ([B]); positions the next one takes.
  at::Tensor lengths() const;
  at::Tensor next_positions() const;
  // Images and videos passed so far (their media indices in appended layouts continue these).
  std::int64_t images() const;
  std::int64_t videos() const;
  // The layout of the prompt and appended chunks (decode steps are text), as each pass built it
  // before any pruning.
  const model::TokenLayout& layout() const;
  SessionStats stats() const;
  model::DecodeState& state();

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  Impl& impl(const char* what) const;
  std::unique_ptr<Impl> impl_;
};

// KV bytes held by several sessions together, shared blocks counted once.
std::int64_t kv_bytes_held(const std::vector<const Session*>& sessions);

}  // namespace glimpse::generate
