#include "server/engine/background_merger.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/intra_op_threads.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

MergeKey KeyOf(const ServedAdapter& adapter, int64_t rank) {
  return MergeKey{adapter.name, adapter.version, rank};
}

}  // namespace

struct BackgroundMerger::Waiter {
  explicit Waiter(int64_t jobs) : remaining(jobs) {}

  void Finish(const absl::Status& status) {
    absl::MutexLock lock(&mu);
    if (!status.ok() && first_error.ok()) first_error = status;
    --remaining;
  }
  absl::Status Wait() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int64_t* left) { return *left == 0; }, &remaining));
    return first_error;
  }

  absl::Mutex mu;
  int64_t remaining ABSL_GUARDED_BY(mu);
  absl::Status first_error ABSL_GUARDED_BY(mu);
};

BackgroundMerger::BackgroundMerger(MergeCache& cache, MergeFunction merge,
                                   ServerMetrics* metrics)
    : cache_(cache), merge_(std::move(merge)), metrics_(metrics) {
  thread_ = std::thread([this] {
    // One intra-op thread: a merge is background work and must not take
    // cores from the batches, nor keep an OpenMP team of its own
    // (core/util/intra_op_threads.h).
    SetThisThreadsIntraOpThreads(1);
    Loop();
  });
}

BackgroundMerger::~BackgroundMerger() {
  std::deque<Job> dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  for (const Job& job : dropped) {
    if (job.waiter != nullptr) {
      job.waiter->Finish(absl::CancelledError("the server is stopping"));
    }
  }
  thread_.join();
}

void BackgroundMerger::Schedule(std::shared_ptr<const ServedAdapter> adapter,
                                int64_t rank) {
  MergeKey key = KeyOf(*adapter, rank);
  if (cache_.Contains(key) || cache_.IsRetired(key)) return;
  absl::MutexLock lock(&mu_);
  if (stopping_ || too_large_.contains(key) || !scheduled_.insert(key).second) {
    return;
  }
  queue_.push_back(Job{std::move(adapter), rank, nullptr});
}

absl::Status BackgroundMerger::MergeAndWait(
    std::shared_ptr<const ServedAdapter> adapter,
    const std::vector<int64_t>& ranks) {
  if (ranks.empty()) return absl::OkStatus();
  auto waiter = std::make_shared<Waiter>(static_cast<int64_t>(ranks.size()));
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("the server is stopping");
    for (int64_t rank : ranks) queue_.push_back(Job{adapter, rank, waiter});
  }
  return waiter->Wait();
}

void BackgroundMerger::WaitUntilIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](BackgroundMerger* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return self->queue_.empty() && !self->running_;
      },
      this));
}

void BackgroundMerger::Loop() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](BackgroundMerger* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    const absl::Status status = Run(job);
    if (job.waiter != nullptr) job.waiter->Finish(status);
    absl::MutexLock lock(&mu_);
    if (job.waiter == nullptr) scheduled_.erase(KeyOf(*job.adapter, job.rank));
    running_ = false;
  }
}

absl::Status BackgroundMerger::Run(const Job& job) {
  const ServedAdapter& adapter = *job.adapter;
  const MergeKey key = KeyOf(adapter, job.rank);
  if (cache_.IsRetired(key)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "adapter '", adapter.name, "' version ", adapter.version,
        " was replaced or unloaded before its rank ", job.rank, " merged"));
  }
  if (cache_.Contains(key)) return absl::OkStatus();
  absl::StatusOr<MergedEntry> merged = merge_(adapter, job.rank);
  if (!merged.ok()) {
    spdlog::warn("merging adapter {} v{} at rank {} failed: {}", adapter.name,
                 adapter.version, job.rank, merged.status().ToString());
    return merged.status();
  }
  if (metrics_ != nullptr) metrics_->CountMerge();
  if (merged->bytes > cache_.budget_bytes()) {
    absl::MutexLock lock(&mu_);
    too_large_.insert(key);
    return absl::ResourceExhaustedError(absl::StrCat(
        "merged weights of adapter '", adapter.name, "' at rank ", job.rank,
        " (", merged->bytes, " bytes) do not fit the merge cache budget of ",
        cache_.budget_bytes(), " bytes"));
  }
  if (!cache_.Insert(key, std::move(merged->hook), merged->bytes) &&
      cache_.IsRetired(key)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "adapter '", adapter.name, "' version ", adapter.version,
        " was replaced or unloaded while its rank ", job.rank, " merged"));
  }
  return absl::OkStatus();
}

}  // namespace dylora::serving
