// InferenceTask: one resolved request's rows waiting for a batch, and how to
// hand the result back. Built by the ServingRuntime, owned by the
// DynamicBatcher once submitted, completed exactly once through `done`.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/batch_types.h"

namespace dylora::serving {

// What a request gets back: what it ran on, its rows' outputs and timings.
struct InferenceResult {
  // The target the rows were computed with: the adapter version and rank
  // reported to the client are these, never looked up again.
  Target target;
  int64_t width = 0;
  std::vector<float> values;  // this request's rows only, [rows, width]
  ExecutionPath path = ExecutionPath::kTruncated;
  absl::Duration queue_time;    // enqueue -> batch start
  absl::Duration compute_time;  // the batch's engine call
  int64_t batch_rows = 0;       // rows in the batch it ran in

  int64_t rows() const {
    return width > 0 ? static_cast<int64_t>(values.size()) / width : 0;
  }
};

using InferenceDone = std::function<void(absl::StatusOr<InferenceResult>)>;

struct InferenceTask {
  // What the rows run on; tasks batch together when SameModel() holds.
  Target target;
  std::vector<TokenizedText> rows;  // at least one
  absl::Time deadline = absl::InfiniteFuture();
  // Polled before compute; empty means never cancelled.
  std::function<bool()> is_cancelled;
  // Called exactly once from a batcher thread (or from Stop()/RunOnce()):
  // the result, or DEADLINE_EXCEEDED / CANCELLED when dropped before
  // compute, or the engine's error. Never called when Submit fails.
  InferenceDone done;

  // Set by the batcher at Submit.
  absl::Time enqueue_time;
};

}  // namespace dylora::serving
