// Random DyLoRA adapters for the real MiniLM, written to disk in the
// PEFT/DyLoRA layout, for the server tests.
#pragma once

#include <optional>
#include <string>

#include "core/adapter/adapter_io.h"
#include "gtest/gtest.h"
#include "tests/core/adapter/adapter_test_util.h"

namespace dylora::testing {

// Writes a random 3-label DyLoRA adapter (ranks 1..8, rank table with best 6
// and smallest-within-tolerance 3) for `encoder` into <dir>/<name>. `head`
// absent: the family's Hugging Face head (the pooler for MiniLM).
inline std::string WriteRandomAdapter(
    const Encoder& encoder, const std::string& dir, const std::string& name,
    uint64_t seed, std::optional<HeadKind> head = std::nullopt) {
  AdapterConfig config;
  config.head = head;
  std::unique_ptr<DyLoraAdapter> adapter = RandomAdapter(encoder, config, seed);
  EXPECT_NE(adapter, nullptr);
  if (adapter == nullptr) return "";
  RankMetrics metrics;
  metrics.metric = "accuracy";
  metrics.values = {{1, 0.80}, {2, 0.84}, {3, 0.88},  {4, 0.885},
                    {5, 0.89}, {6, 0.90}, {7, 0.895}, {8, 0.893}};
  metrics.Recommend(0.025);  // 0.90 - 0.88 is not exactly 0.02 in binary
  adapter->set_rank_metrics(metrics);
  const std::string path = dir + "/" + name;
  const absl::Status saved = SaveAdapter(*adapter, path);
  EXPECT_TRUE(saved.ok()) << saved;
  return path;
}

}  // namespace dylora::testing
