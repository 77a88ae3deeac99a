#include <string>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/model/model.h"

namespace glimpse::model {

at::Tensor Model::weight(const std::string& name) const {
  const auto it = weights_.find(name);
  if (it == weights_.end()) {
    throw InputError(architecture() + ": no weight named '" + name + "' (" +
                     std::to_string(weights_.size()) +
                     " weights; see weight_names(), e.g. 'model.norm.weight')");
  }
  return it->second;
}

std::vector<std::string> Model::weight_names() const {
  std::vector<std::string> out;
  out.reserve(weights_.size());
  for (const auto& [name, tensor] : weights_) out.push_back(name);
  return out;
}

}  // namespace glimpse::model
