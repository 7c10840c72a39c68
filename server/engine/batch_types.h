// The plain values that cross from request threads into the engine: token ids
// and a rank per row in, one float vector per row out. No tensors, so the
// API and the scheduler do not need LibTorch headers.
#pragma once

#include <cstdint>
#include <vector>

namespace dylora::serving {

// One tokenized input (a text or a text pair) and the rank it runs at.
struct EngineRow {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // same length as ids
  // In the adapter's [r_min, r_max]; ignored (0) for backbone-only rows.
  int64_t rank = 0;
};

enum class ExecutionPath {
  kBackbone,   // no adapter: pooled sentence embeddings
  kTruncated,  // rank masks over the adapter's factors (mixed ranks allowed)
  kMerged,     // cached W0 + (alpha/b) up_b down_b (one rank per batch)
};

inline const char* ExecutionPathName(ExecutionPath path) {
  switch (path) {
    case ExecutionPath::kBackbone:
      return "backbone";
    case ExecutionPath::kTruncated:
      return "truncated";
    case ExecutionPath::kMerged:
      return "merged";
  }
  return "unknown";
}

// Row-major [rows, width]: logits of the adapter's head, or the embedding.
struct EngineOutput {
  int64_t width = 0;
  std::vector<float> values;
  ExecutionPath path = ExecutionPath::kTruncated;
};

}  // namespace dylora::serving
