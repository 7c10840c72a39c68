// DynamicBatcher: Triton's dynamic batcher for one backbone. Requests queue in
// arrival order; a batch is the oldest task plus every later task on the same
// model (the backbone, or one adapter version: SameModel), up to
// `max_batch_size` rows (mixed ranks allowed). A batch runs when it is full,
// when its oldest task has waited `max_queue_delay`, when no batch is running
// (unless `wait_when_idle`: waiting only pays while the engine is busy, as
// requests that arrive during a batch form the next one, so an idle server
// answers a lone request at once), or when the batcher is stopping. Expired
// (deadline passed) or cancelled tasks are dropped before compute. A full queue
// refuses a task at once (RESOURCE_EXHAUSTED) instead of letting it time out.
//
// Threads: Start() runs `workers` worker threads that each form and run
// batches (the runner must be thread-safe when workers > 1). Without
// Start(), tests step it by hand with RunOnce() and an injected clock, so
// the same rules are testable without sleeping.
//
// Call order: construct, [Start()], Submit()..., Stop() (idempotent; also
// run by the destructor). Submit is thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/batch_types.h"
#include "server/scheduler/inference_task.h"

namespace dylora::serving {

class ServerMetrics;

// Names match dylora-serve's flags and TOML keys (underscores for dashes;
// durations carry their unit in the flag: --max-queue-delay-ms).
struct BatcherOptions {
  int64_t max_batch_size = 32;  // rows per batch
  absl::Duration max_queue_delay = absl::Milliseconds(2);
  // Rows queued (not yet running) at most; more -> RESOURCE_EXHAUSTED.
  int64_t queue_capacity = 1024;
  int workers = 1;  // batch worker threads
  // Hold a lone request for max_queue_delay even when no batch is running
  // (Triton's rule: bigger batches, a delay on every idle request). Off: an
  // idle batcher runs what is queued at once.
  bool wait_when_idle = false;

  // INVALID_ARGUMENT naming the option for a value out of range.
  absl::Status Validate() const;
};

// Runs one batch (the rows of its tasks in order, all on one model). The
// Engine provides it.
using BatchRunner =
    std::function<absl::StatusOr<BatchOutput>(const EngineBatch& batch)>;

class DynamicBatcher {
 public:
  // `options` must pass Validate(). `metrics` may be null. `clock` defaults
  // to absl::Now.
  DynamicBatcher(BatcherOptions options, BatchRunner runner,
                 ServerMetrics* metrics,
                 std::function<absl::Time()> clock = nullptr);
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Starts the worker threads; each runs `on_worker_start` (when given)
  // before its first batch, e.g. to set that thread's intra-op threads.
  void Start(std::function<void()> on_worker_start = nullptr);

  // Queues `task`. INVALID_ARGUMENT: no rows or no `done`;
  // RESOURCE_EXHAUSTED: the queue cannot take its rows; UNAVAILABLE: stopping.
  // On error `done` is not called.
  absl::Status Submit(std::unique_ptr<InferenceTask> task);

  // Hand stepping (no Start()): forms the batch the rules allow at clock()
  // and runs it on this thread. Returns the rows run (0: nothing ready).
  int64_t RunOnce();

  // Refuses new tasks, runs every queued task, joins the workers.
  void Stop();

  int64_t queued_rows() const;

 private:
  struct Batch {
    std::vector<std::unique_ptr<InferenceTask>> tasks;
  };
  // A task removed before compute and the status its `done` gets.
  struct DroppedTask {
    std::unique_ptr<InferenceTask> task;
    absl::Status status;
  };
  // Moves expired and cancelled tasks to `dropped` (their `done` is called
  // later, without mu_) and, when a batch is ready at `now`, takes it out of
  // the queue. `engine_idle`: no batch is running, so any batch is ready
  // unless options_.wait_when_idle.
  std::optional<Batch> TakeReadyBatch(absl::Time now, bool drain,
                                      bool engine_idle,
                                      std::vector<DroppedTask>* dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Clock time at which the queue next needs a look without new events: the
  // oldest task's delay or the earliest deadline. InfiniteFuture: empty.
  absl::Time NextWakeTime() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes what is ready at clock() and completes it on this thread. Returns
  // the rows run; sets *idle when there was nothing to take at all.
  int64_t StepInline(bool* idle) ABSL_LOCKS_EXCLUDED(mu_);
  void FailDropped(std::vector<DroppedTask> dropped);
  void RunBatch(Batch batch, absl::Time start);
  // The engine's view of `batch`: row pointers into its tasks, in order.
  static EngineBatch BatchOf(const Batch& batch);
  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const BatcherOptions options_;
  const BatchRunner runner_;
  ServerMetrics* const metrics_;
  const std::function<absl::Time()> clock_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<InferenceTask>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_rows_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int running_batches_ ABSL_GUARDED_BY(mu_) = 0;  // on the worker threads
  // Signalled on Submit, Stop, and when a worker leaves work behind.
  absl::CondVar work_cv_;

  // Serialises Start() and Stop() so the workers are joined exactly once.
  absl::Mutex lifecycle_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(lifecycle_mu_);
};

}  // namespace dylora::serving
