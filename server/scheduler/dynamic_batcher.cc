#include "server/scheduler/dynamic_batcher.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

int64_t RowCount(const InferenceTask& task) {
  return static_cast<int64_t>(task.rows.size());
}

}  // namespace

absl::Status BatcherOptions::Validate() const {
  if (max_batch_size < 1 || queue_capacity < 1 || workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max-batch-size, queue-capacity and workers must be >= 1, got ",
        max_batch_size, ", ", queue_capacity, " and ", workers));
  }
  if (max_queue_delay < absl::ZeroDuration() ||
      max_queue_delay == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("max-queue-delay-ms must be finite and >= 0, got ",
                     absl::FormatDuration(max_queue_delay)));
  }
  return absl::OkStatus();
}

DynamicBatcher::DynamicBatcher(BatcherOptions options, BatchRunner runner,
                               ServerMetrics* metrics,
                               std::function<absl::Time()> clock)
    : options_(std::move(options)),
      runner_(std::move(runner)),
      metrics_(metrics),
      clock_(clock ? std::move(clock) : [] { return absl::Now(); }) {}

DynamicBatcher::~DynamicBatcher() { Stop(); }

void DynamicBatcher::Start(std::function<void()> on_worker_start) {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    // Started already, or stopped: Stop() owns the drain from then on.
    if (stopping_ || !workers_.empty()) return;
  }
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this, on_worker_start] {
      if (on_worker_start) on_worker_start();
      WorkerLoop();
    });
  }
}

absl::Status DynamicBatcher::Submit(std::unique_ptr<InferenceTask> task) {
  if (task == nullptr || task->rows.empty()) {
    return absl::InvalidArgumentError(
        "an inference task needs at least one row");
  }
  if (!task->done) {
    return absl::InvalidArgumentError(
        "an inference task needs a done callback");
  }
  const int64_t rows = RowCount(*task);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the batcher is stopping; no new requests");
    }
    // Refusing at once lets the client back off instead of timing out.
    if (queued_rows_ + rows > options_.queue_capacity) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "queue is full: ", queued_rows_, " rows queued, capacity ",
          options_.queue_capacity, "; the request has ", rows, " rows"));
    }
    task->enqueue_time = clock_();
    queue_.push_back(std::move(task));
    queued_rows_ += rows;
    if (metrics_ != nullptr) metrics_->SetQueueDepth(queued_rows_);
  }
  work_cv_.Signal();
  return absl::OkStatus();
}

int64_t DynamicBatcher::RunOnce() {
  bool idle = false;
  return StepInline(&idle);
}

void DynamicBatcher::Stop() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  if (!workers_.empty()) {
    // The workers drain the queue before they return.
    for (std::thread& worker : workers_) worker.join();
    workers_.clear();
    return;
  }
  // Hand-stepped (or already joined): drain on this thread.
  bool idle = false;
  while (!idle) StepInline(&idle);
}

int64_t DynamicBatcher::queued_rows() const {
  absl::MutexLock lock(&mu_);
  return queued_rows_;
}

std::optional<DynamicBatcher::Batch> DynamicBatcher::TakeReadyBatch(
    absl::Time now, bool drain, bool engine_idle,
    std::vector<DroppedTask>* dropped) {
  // Drop what can no longer be useful before it costs compute.
  bool removed = false;
  for (auto it = queue_.begin(); it != queue_.end();) {
    InferenceTask& task = **it;
    absl::Status reason;
    if (task.deadline <= now) {
      reason = absl::DeadlineExceededError(
          absl::StrCat("request expired after waiting ",
                       absl::ToInt64Milliseconds(now - task.enqueue_time),
                       "ms in the queue"));
    } else if (task.is_cancelled && task.is_cancelled()) {
      reason = absl::CancelledError("request was cancelled while queued");
    } else {
      ++it;
      continue;
    }
    queued_rows_ -= RowCount(task);
    dropped->push_back({std::move(*it), std::move(reason)});
    it = queue_.erase(it);
    removed = true;
  }
  if (removed && metrics_ != nullptr) metrics_->SetQueueDepth(queued_rows_);
  if (queue_.empty()) return std::nullopt;

  // The oldest task plus later tasks of its adapter, in order, while they
  // fit. Stopping at the first one that does not fit keeps each adapter's
  // tasks FIFO; such a batch cannot grow any more, so it counts as full.
  const int64_t max_rows = options_.max_batch_size;
  const InferenceTask& oldest = *queue_.front();
  std::vector<size_t> picked = {0};
  int64_t rows = RowCount(oldest);
  bool full = rows >= max_rows;
  for (size_t i = 1; i < queue_.size() && !full; ++i) {
    if (!SameModel(queue_[i]->target, oldest.target)) continue;
    const int64_t task_rows = RowCount(*queue_[i]);
    if (rows + task_rows > max_rows) {
      full = true;
      break;
    }
    picked.push_back(i);
    rows += task_rows;
    full = rows >= max_rows;
  }
  const bool ready = full || drain ||
                     (engine_idle && !options_.wait_when_idle) ||
                     now >= oldest.enqueue_time + options_.max_queue_delay;
  if (!ready) return std::nullopt;

  // Take the picked tasks out; the skipped ones keep their order.
  Batch batch;
  std::deque<std::unique_ptr<InferenceTask>> rest;
  size_t next_pick = 0;
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (next_pick < picked.size() && picked[next_pick] == i) {
      batch.tasks.push_back(std::move(queue_[i]));
      ++next_pick;
    } else {
      rest.push_back(std::move(queue_[i]));
    }
  }
  queue_.swap(rest);
  queued_rows_ -= rows;
  if (metrics_ != nullptr) metrics_->SetQueueDepth(queued_rows_);
  return batch;
}

absl::Time DynamicBatcher::NextWakeTime() const {
  if (queue_.empty()) return absl::InfiniteFuture();
  absl::Time wake = queue_.front()->enqueue_time + options_.max_queue_delay;
  for (const auto& task : queue_) wake = std::min(wake, task->deadline);
  return wake;
}

int64_t DynamicBatcher::StepInline(bool* idle) {
  std::vector<DroppedTask> dropped;
  std::optional<Batch> batch;
  const absl::Time now = clock_();
  {
    absl::MutexLock lock(&mu_);
    // Hand-stepped: nothing runs between RunOnce calls.
    batch = TakeReadyBatch(now, stopping_, /*engine_idle=*/true, &dropped);
  }
  *idle = !batch.has_value() && dropped.empty();
  FailDropped(std::move(dropped));
  if (!batch.has_value()) return 0;
  int64_t rows = 0;
  for (const auto& task : batch->tasks) rows += RowCount(*task);
  RunBatch(std::move(*batch), now);
  return rows;
}

void DynamicBatcher::FailDropped(std::vector<DroppedTask> dropped) {
  for (DroppedTask& entry : dropped) {
    if (metrics_ != nullptr) {
      metrics_->CountDropped(
          absl::IsDeadlineExceeded(entry.status) ? "deadline" : "cancelled");
    }
    entry.task->done(std::move(entry.status));
  }
}

void DynamicBatcher::RunBatch(Batch batch, absl::Time start) {
  EngineBatch engine_batch = BatchOf(batch);
  const int64_t batch_rows = std::visit(
      [](const auto& b) { return static_cast<int64_t>(b.rows.size()); },
      engine_batch);
  if (metrics_ != nullptr) {
    for (const auto& task : batch.tasks) {
      metrics_->ObserveQueueTime(
          absl::ToDoubleSeconds(start - task->enqueue_time));
    }
  }

  const absl::Time compute_start = clock_();
  absl::StatusOr<BatchOutput> output = runner_(engine_batch);
  const absl::Duration compute_time = clock_() - compute_start;

  if (output.ok() &&
      (output->width <= 0 || static_cast<int64_t>(output->values.size()) !=
                                 batch_rows * output->width)) {
    output = absl::InternalError(absl::StrCat(
        "the engine returned ", output->values.size(), " values for ",
        batch_rows, " rows of width ", output->width));
  }
  if (!output.ok()) {
    for (const auto& task : batch.tasks) task->done(output.status());
    return;
  }

  const int64_t width = output->width;
  auto next_value = output->values.begin();
  for (const auto& task : batch.tasks) {
    InferenceResult result;
    const int64_t count = RowCount(*task) * width;
    result.values.assign(next_value, next_value + count);
    next_value += count;
    result.target = std::move(task->target);
    result.width = width;
    result.path = output->path;
    result.queue_time = start - task->enqueue_time;
    result.compute_time = compute_time;
    result.batch_rows = batch_rows;
    task->done(std::move(result));
  }
}

EngineBatch DynamicBatcher::BatchOf(const Batch& batch) {
  const Target& first = batch.tasks.front()->target;
  if (const auto* at_rank = std::get_if<AdapterAtRank>(&first)) {
    AdapterBatch out{at_rank->adapter, {}, {}};
    for (const auto& task : batch.tasks) {
      const int64_t rank = std::get<AdapterAtRank>(task->target).rank;
      for (const TokenizedText& row : task->rows) {
        out.rows.push_back(&row);
        out.ranks.push_back(rank);
      }
    }
    return out;
  }
  BackboneBatch out;
  for (const auto& task : batch.tasks) {
    for (const TokenizedText& row : task->rows) out.rows.push_back(&row);
  }
  return out;
}

void DynamicBatcher::WorkerLoop() {
  for (;;) {
    std::vector<DroppedTask> dropped;
    std::optional<Batch> batch;
    absl::Time now;
    bool finished = false;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        now = clock_();
        batch = TakeReadyBatch(now, stopping_, running_batches_ == 0, &dropped);
        if (batch.has_value() || !dropped.empty()) break;
        if (stopping_ && queue_.empty()) {
          finished = true;
          break;
        }
        // Decisions use the injected clock; the wait itself is real time.
        const absl::Time wake = NextWakeTime();
        work_cv_.WaitWithDeadline(&mu_, wake == absl::InfiniteFuture()
                                            ? absl::InfiniteFuture()
                                            : absl::Now() + (wake - now));
      }
      if (batch.has_value()) ++running_batches_;
      // Another worker may be able to start on what is left.
      if (batch.has_value() && !queue_.empty()) work_cv_.Signal();
    }
    FailDropped(std::move(dropped));
    if (batch.has_value()) {
      RunBatch(std::move(*batch), now);
      absl::MutexLock lock(&mu_);
      --running_batches_;
    }
    if (finished) return;
  }
}

}  // namespace dylora::serving
