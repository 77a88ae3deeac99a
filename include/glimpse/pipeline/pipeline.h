#pragma once

// Test-time methods composed from JSON (DESIGN.md section 7):
//   {"methods": [{"type": "fastv", "layer": 2, "ratio": 0.5}]}
// A registry maps "type" strings to factories; unknown types and bad parameters are ConfigErrors
// that name the key. A Pipeline is the ForwardHooks of a run: it calls its methods in order at
// every hook site and collects their report entries.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "glimpse/core/config.h"
#include "glimpse/model/hooks.h"
#include "glimpse/pipeline/report.h"

namespace glimpse::pipeline {

class Method : public model::ForwardHooks {
 public:
  virtual std::string type() const = 0;
  // Appends this method's decisions and costs of the last run.
  virtual void report(Report& report) const = 0;
};

using MethodFactory = std::function<std::unique_ptr<Method>(const core::Config& params)>;

class MethodRegistry {
 public:
  // The registry with every built-in method (one registration function, deterministic order).
  static MethodRegistry& instance();
  void add(const std::string& type, MethodFactory factory);
  const MethodFactory* find(const std::string& type) const;
  std::vector<std::string> types() const;

 private:
  std::vector<std::pair<std::string, MethodFactory>> entries_;
};

class Pipeline : public model::ForwardHooks {
 public:
  Pipeline() = default;
  // `spec` is JSON text; `source` names it in errors (a file name, or "--pipeline").
  static Pipeline from_json(const std::string& spec, const std::string& source);
  // A file path, or JSON text when it starts with '{'.
  static Pipeline from_argument(const std::string& argument);

  void add(std::unique_ptr<Method> method) { methods_.push_back(std::move(method)); }
  bool empty() const { return methods_.empty(); }
  const std::vector<std::unique_ptr<Method>>& methods() const { return methods_; }
  Report report() const;

  std::optional<model::ProbeRequest> probe(std::int64_t layer, bool prefill) override;
  void on_vision_out(model::VisionOut& vision) override;
  void on_block_pre(model::BlockPre& block) override;
  void on_attention_probe(const model::AttentionProbe& probe) override;
  void on_mlp(model::MlpSite& mlp) override;
  void on_block_post(std::int64_t layer, const at::Tensor& hidden, bool prefill) override;
  void on_kv(model::KvSite& kv) override;
  void on_logits(at::Tensor& logits, bool prefill) override;

 private:
  std::vector<std::unique_ptr<Method>> methods_;
};

}  // namespace glimpse::pipeline
