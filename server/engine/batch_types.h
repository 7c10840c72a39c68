// The plain values that cross from request threads into the engine: what a
// request runs on (its Target), its token ids, and one float vector per row
// back. No tensors, so the API and the scheduler need no LibTorch headers.
//
// Everything here is already valid when it is built: the ServingRuntime
// resolves and checks a request once (rank in the adapter's range, ids in
// the vocabulary, lengths), and the layers below use it unchecked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "proto/wire_names.h"

namespace dylora::serving {

struct ServedAdapter;

// One tokenized input (a text or a text pair): 1..max tokens, every id in
// the vocabulary and every type id in the type vocabulary.
struct TokenizedText {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // same length as ids
};

// The backbone alone: mean-pooled, L2-normalised sentence embeddings.
struct Backbone {};

// One version of an adapter at one rank.
struct AdapterAtRank {
  // The version the request computes with (kept alive by this reference).
  std::shared_ptr<const ServedAdapter> adapter;
  int64_t rank = 0;         // in the adapter's [r_min, r_max]
  std::string rank_source;  // "rank", "profile:<name>", "policy:<name>"
};

// What one request runs on; built only by ServingRuntime::Resolve.
using Target = std::variant<Backbone, AdapterAtRank>;

// Whether two requests may share a batch: both on the backbone, or both on
// the same adapter version (their ranks may differ).
inline bool SameModel(const Target& a, const Target& b) {
  if (a.index() != b.index()) return false;
  const auto* x = std::get_if<AdapterAtRank>(&a);
  return x == nullptr || x->adapter == std::get<AdapterAtRank>(b).adapter;
}

// A batch as the engine runs it: the rows of its requests in order.
struct BackboneBatch {
  std::vector<const TokenizedText*> rows;
};
struct AdapterBatch {
  std::shared_ptr<const ServedAdapter> adapter;
  std::vector<const TokenizedText*> rows;
  std::vector<int64_t> ranks;  // one per row
};
using EngineBatch = std::variant<BackboneBatch, AdapterBatch>;

enum class ExecutionPath {
  kBackbone,   // no adapter: pooled sentence embeddings
  kTruncated,  // rank masks over the adapter's factors (mixed ranks allowed)
  kMerged,     // cached W0 + (alpha/b) up_b down_b (one rank per batch)
};

// The path's wire name (metrics label, KServe `execution_path`).
inline const char* ExecutionPathName(ExecutionPath path) {
  switch (path) {
    case ExecutionPath::kBackbone:
      return wire::kPathBackbone;
    case ExecutionPath::kTruncated:
      return wire::kPathTruncated;
    case ExecutionPath::kMerged:
      return wire::kPathMerged;
  }
  return "unknown";
}

// Row-major [rows, width]: logits of the adapter's head, or the embedding.
struct BatchOutput {
  int64_t width = 0;
  std::vector<float> values;
  ExecutionPath path = ExecutionPath::kTruncated;
};

}  // namespace dylora::serving
