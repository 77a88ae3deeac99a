// The built-in methods and controllers: one registration line each. The registry is defined here,
// on the methods' side, so that the pipeline depends on no method.
#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/methods/inspect/logit_lens_method.h"
#include "glimpse/pipeline/pipeline.h"
#include "methods/feedback/cyberv.h"
#include "methods/feedback/deco.h"
#include "methods/feedback/early_exit.h"
#include "methods/feedback/memvr.h"
#include "methods/feedback/self_consistency.h"
#include "methods/feedback/vcd.h"
#include "methods/kv/adakv.h"
#include "methods/kv/h2o.h"
#include "methods/kv/pyramidkv.h"
#include "methods/kv/snapkv.h"
#include "methods/kv/sparsemm.h"
#include "methods/kv/streaming_llm.h"
#include "methods/prune/fastv.h"
#include "methods/prune/pdrop.h"
#include "methods/prune/visionzip.h"

namespace glimpse::pipeline {

template <>
MethodRegistry& MethodRegistry::instance() {
  static MethodRegistry* registry = [] {
    auto* r = new MethodRegistry();
    r->add("fastv", &methods::prune::FastV::create);
    r->add("attention_map", &methods::inspect::AttentionMap::create);
    r->add("logit_lens", &methods::inspect::LogitLens::create);
    r->add("pdrop", &methods::prune::PyramidDrop::create);
    r->add("visionzip", &methods::prune::VisionZip::create);
    r->add("streaming_llm", &methods::kv::StreamingLLM::create);
    r->add("h2o", &methods::kv::H2O::create);
    r->add("snapkv", &methods::kv::SnapKV::create);
    r->add("pyramidkv", &methods::kv::PyramidKV::create);
    r->add("adakv", &methods::kv::AdaKV::create);
    r->add("sparsemm", &methods::kv::SparseMM::create);
    r->add("deco", &methods::feedback::DeCo::create);
    r->add("vcd", &methods::feedback::VCD::create);
    r->add("memvr", &methods::feedback::MemVR::create);
    r->add("early_exit", &methods::feedback::EarlyExit::create);
    return r;
  }();
  return *registry;
}

template <>
ControllerRegistry& ControllerRegistry::instance() {
  static ControllerRegistry* registry = [] {
    auto* r = new ControllerRegistry();
    r->add("self_consistency", &methods::feedback::SelfConsistency::create);
    r->add("cyberv", &methods::feedback::CyberV::create);
    return r;
  }();
  return *registry;
}

}  // namespace glimpse::pipeline
