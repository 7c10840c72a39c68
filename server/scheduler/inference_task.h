// InferenceTask: one request's rows waiting for a batch, and how to hand the
// result back. Built on a request thread, owned by the DynamicBatcher once
// submitted, completed exactly once through `done`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/batch_types.h"

namespace dylora::serving {

struct ServedAdapter;

struct TaskResult {
  int64_t width = 0;
  std::vector<float> values;  // this task's rows only, [rows, width]
  ExecutionPath path = ExecutionPath::kTruncated;
  absl::Duration queue_time;    // enqueue -> batch start
  absl::Duration compute_time;  // the batch's engine call
  int64_t batch_rows = 0;       // rows in the batch it ran in
};

struct InferenceTask {
  // The version this request runs on (kept alive by this reference); null:
  // the backbone alone. Tasks batch together only with the same pointer.
  std::shared_ptr<const ServedAdapter> adapter;
  std::vector<EngineRow> rows;  // at least one
  absl::Time deadline = absl::InfiniteFuture();
  // Polled before compute; empty means never cancelled.
  std::function<bool()> is_cancelled;
  // Called exactly once from a batcher thread (or from Stop()/RunOnce()):
  // the result, or DEADLINE_EXCEEDED / CANCELLED when dropped before
  // compute, or the engine's error. Never called when Submit fails.
  std::function<void(absl::StatusOr<TaskResult>)> done;

  // Set by the batcher at Submit.
  absl::Time enqueue_time;
};

}  // namespace dylora::serving
