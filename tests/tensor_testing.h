#pragma once

// Tensor comparisons for golden tests.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

namespace glimpse::test {

// Passes when |a - b| <= atol + rtol * |b| everywhere; otherwise reports the largest difference.
inline ::testing::AssertionResult all_close(const at::Tensor& a, const at::Tensor& b, double atol,
                                            double rtol, const std::string& what) {
  if (a.sizes() != b.sizes()) {
    return ::testing::AssertionFailure() << what << ": shape " << a.sizes() << " vs " << b.sizes();
  }
  const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  const at::Tensor diff = (x - y).abs();
  if (diff.le(atol + rtol * y.abs()).all().item<bool>()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max |diff| " << diff.max().item<double>();
}

}  // namespace glimpse::test
