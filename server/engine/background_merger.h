// BackgroundMerger: computes merged weights (W0 + (alpha/b) up_b down_b) on
// its own thread and puts them in the MergeCache, so that no batch ever
// waits for a merge: a batch whose rank is not merged yet runs truncated.
//
// Two kinds of work: Schedule() (a rank became hot; returns at once,
// deduplicated against what is cached or already queued) and
// MergeAndWait() (pre-warm at load: the caller, never a batch worker, waits
// for the result). Jobs of retired versions (MergeCache::Retire) are skipped.
//
// Thread-safe. The destructor finishes the merge in progress, drops the
// queue (waiters get CANCELLED) and joins the thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/merge_cache.h"
#include "server/registry/served_adapter.h"

namespace dylora::serving {

class ServerMetrics;

// One merged entry and what it costs in the cache.
struct MergedEntry {
  std::shared_ptr<const LinearHook> hook;
  int64_t bytes = 0;
};

// Computes the merge of `adapter` at `rank` (the Engine's uses the encoder;
// tests inject slow or failing ones).
using MergeFunction = std::function<absl::StatusOr<MergedEntry>(
    const ServedAdapter& adapter, int64_t rank)>;

class BackgroundMerger {
 public:
  // `cache` must outlive the merger; `metrics` may be null.
  BackgroundMerger(MergeCache& cache, MergeFunction merge,
                   ServerMetrics* metrics);
  ~BackgroundMerger();
  BackgroundMerger(const BackgroundMerger&) = delete;
  BackgroundMerger& operator=(const BackgroundMerger&) = delete;

  // Queues a merge of (adapter, rank) unless it is cached, queued, running,
  // retired or known not to fit the cache. Never blocks on a merge.
  void Schedule(std::shared_ptr<const ServedAdapter> adapter, int64_t rank);

  // Merges `ranks` of `adapter` (after the jobs already queued) and waits.
  // The first error: the merge's own, RESOURCE_EXHAUSTED when an entry does
  // not fit the cache budget, CANCELLED when the merger stops first.
  absl::Status MergeAndWait(std::shared_ptr<const ServedAdapter> adapter,
                            const std::vector<int64_t>& ranks);

  // Blocks until nothing is queued or running (tests, benchmarks).
  void WaitUntilIdle();

 private:
  struct Waiter;  // one MergeAndWait call
  struct Job {
    std::shared_ptr<const ServedAdapter> adapter;
    int64_t rank = 0;
    std::shared_ptr<Waiter> waiter;  // null for Schedule()
  };

  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs one job; the status its waiter gets.
  absl::Status Run(const Job& job);

  MergeCache& cache_;
  const MergeFunction merge_;
  ServerMetrics* const metrics_;

  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  // Keys queued or running from Schedule(), so traffic queues a rank once.
  absl::flat_hash_set<MergeKey> scheduled_ ABSL_GUARDED_BY(mu_);
  // Keys whose merge is larger than the whole cache: never retried.
  absl::flat_hash_set<MergeKey> too_large_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dylora::serving
