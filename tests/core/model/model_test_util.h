// Shared helpers for the core/model tests.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "core/io/torch_tensors.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora::testing {

inline std::string ModelFixture(const std::string& name) {
  return FixturesDir() + "/model/" + name;
}

// Loads a fixture's tensors; fails the test (empty map) on error.
inline std::map<std::string, at::Tensor> LoadFixtureTensors(
    const std::string& path) {
  auto tensors = LoadTensors(path);
  EXPECT_TRUE(tensors.ok()) << tensors.status();
  return tensors.ok() ? *std::move(tensors)
                      : std::map<std::string, at::Tensor>{};
}

inline double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace dylora::testing
