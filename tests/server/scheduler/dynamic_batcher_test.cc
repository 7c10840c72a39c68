#include "server/scheduler/dynamic_batcher.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Generous bound for waits in threaded tests: a hang fails instead of
// blocking the suite. Not a timing assertion.
constexpr absl::Duration kWaitLimit = absl::Seconds(30);

// A distinct ServedAdapter address per call. The batcher only compares these
// pointers (SameModel), so they never need to point at a real adapter.
std::shared_ptr<const ServedAdapter> FakeAdapter() {
  auto owner = std::make_shared<int64_t>(0);
  return std::shared_ptr<const ServedAdapter>(
      owner, reinterpret_cast<const ServedAdapter*>(owner.get()));
}

// Row r of task `id` carries the id `id * 100 + r`, so outputs show where
// each row went.
int32_t RowId(int task_id, int row) { return task_id * 100 + row; }

// The fake engine's output for one row: {row id, rank} (width 2).
constexpr int64_t kWidth = 2;
std::vector<float> ExpectedValues(int task_id, int rows, int64_t rank) {
  std::vector<float> values;
  for (int r = 0; r < rows; ++r) {
    values.push_back(static_cast<float>(RowId(task_id, r)));
    values.push_back(static_cast<float>(rank));
  }
  return values;
}

struct SeenBatch {
  const ServedAdapter* adapter = nullptr;
  std::vector<int32_t> row_ids;
  std::vector<int32_t> tags;  // ids[1] of each row: the test's adapter tag
};

// Stands in for the engine (the runner is an injected dependency; the real
// engine has its own tests). Records every batch; thread-safe.
class FakeEngine {
 public:
  BatchRunner Runner() {
    return [this](const EngineBatch& batch) -> absl::StatusOr<BatchOutput> {
      SeenBatch seen;
      BatchOutput output;
      output.width = kWidth;
      output.path = ExecutionPath::kMerged;
      const auto* on_adapter = std::get_if<AdapterBatch>(&batch);
      if (on_adapter != nullptr) seen.adapter = on_adapter->adapter.get();
      const std::vector<const TokenizedText*>& rows =
          on_adapter != nullptr ? on_adapter->rows
                                : std::get<BackboneBatch>(batch).rows;
      for (size_t i = 0; i < rows.size(); ++i) {
        seen.row_ids.push_back(rows[i]->ids[0]);
        seen.tags.push_back(rows[i]->ids[1]);
        output.values.push_back(static_cast<float>(rows[i]->ids[0]));
        output.values.push_back(on_adapter != nullptr
                                    ? static_cast<float>(on_adapter->ranks[i])
                                    : 0.f);
      }
      absl::MutexLock lock(&mu_);
      batches_.push_back(std::move(seen));
      if (during_run_) during_run_();
      if (!fail_with_.ok()) return fail_with_;
      if (drop_last_value_) output.values.pop_back();
      return output;
    };
  }
  std::vector<SeenBatch> batches() const {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_with_ = std::move(status);
  }
  void DropLastValue() {
    absl::MutexLock lock(&mu_);
    drop_last_value_ = true;
  }
  void DuringRun(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    during_run_ = std::move(fn);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<SeenBatch> batches_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_with_ ABSL_GUARDED_BY(mu_);
  bool drop_last_value_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> during_run_ ABSL_GUARDED_BY(mu_);
};

// Collects `done` calls by task id; thread-safe.
class Completions {
 public:
  std::function<void(absl::StatusOr<InferenceResult>)> Callback(int task_id) {
    return [this, task_id](absl::StatusOr<InferenceResult> result) {
      absl::MutexLock lock(&mu_);
      ++calls_[task_id];
      ++total_;
      results_.insert_or_assign(task_id, std::move(result));
    };
  }
  int calls(int task_id) const {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(task_id);
    return it == calls_.end() ? 0 : it->second;
  }
  int total() const {
    absl::MutexLock lock(&mu_);
    return total_;
  }
  absl::StatusOr<InferenceResult> result(int task_id) const {
    absl::MutexLock lock(&mu_);
    auto it = results_.find(task_id);
    if (it == results_.end()) return absl::NotFoundError("not completed");
    return it->second;
  }
  // True once `count` done calls happened (false after kWaitLimit).
  bool WaitFor(int count) const {
    absl::MutexLock lock(&mu_);
    auto reached = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return total_ >= count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kWaitLimit);
  }

 private:
  mutable absl::Mutex mu_;
  std::map<int, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<int, absl::StatusOr<InferenceResult>> results_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

struct TaskSpec {
  int id = 0;
  std::shared_ptr<const ServedAdapter> adapter;
  int rows = 1;
  int64_t rank = 4;
  int32_t tag = 0;
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> is_cancelled;
};

std::unique_ptr<InferenceTask> MakeTask(const TaskSpec& spec,
                                        Completions& completions) {
  auto task = std::make_unique<InferenceTask>();
  // A null adapter stands for the backbone.
  if (spec.adapter != nullptr) {
    task->target = AdapterAtRank{spec.adapter, spec.rank, "rank"};
  } else {
    task->target = Backbone{};
  }
  for (int r = 0; r < spec.rows; ++r) {
    task->rows.push_back(TokenizedText{{RowId(spec.id, r), spec.tag}, {0, 0}});
  }
  task->deadline = spec.deadline;
  task->is_cancelled = spec.is_cancelled;
  task->done = completions.Callback(spec.id);
  return task;
}

// ---------------------------------------------------------------------------
// The batching rules, stepped by hand with a manual clock.

class BatcherRulesTest : public ::testing::Test {
 protected:
  std::unique_ptr<DynamicBatcher> MakeBatcher(
      BatcherOptions options, ServerMetrics* metrics = nullptr) {
    return std::make_unique<DynamicBatcher>(options, engine_.Runner(), metrics,
                                            [this] { return now_; });
  }
  absl::Status Submit(DynamicBatcher& batcher, const TaskSpec& spec) {
    return batcher.Submit(MakeTask(spec, completions_));
  }
  void ExpectResult(int task_id, int rows, int64_t rank, int64_t batch_rows) {
    absl::StatusOr<InferenceResult> result = completions_.result(task_id);
    ASSERT_TRUE(result.ok()) << "task " << task_id << ": " << result.status();
    EXPECT_EQ(result->width, kWidth);
    EXPECT_EQ(result->values, ExpectedValues(task_id, rows, rank));
    EXPECT_EQ(result->batch_rows, batch_rows);
    EXPECT_EQ(result->path, ExecutionPath::kMerged);
  }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  FakeEngine engine_;
  Completions completions_;
  std::shared_ptr<const ServedAdapter> adapter_a_ = FakeAdapter();
  std::shared_ptr<const ServedAdapter> adapter_b_ = FakeAdapter();
};

// The delay rules alone (wait_when_idle): the tests below control exactly
// when a batch forms. AnIdleBatcher... tests cover the default.
BatcherOptions Options(int64_t max_rows, absl::Duration delay,
                       int64_t capacity = 1024) {
  BatcherOptions options;
  options.max_batch_size = max_rows;
  options.max_queue_delay = delay;
  options.queue_capacity = capacity;
  options.wait_when_idle = true;
  return options;
}

TEST_F(BatcherRulesTest, AnIdleBatcherRunsALoneTaskAtOnceByDefault) {
  BatcherOptions options = Options(8, absl::Hours(1));
  options.wait_when_idle = false;
  DynamicBatcher batcher(options, engine_.Runner(), nullptr,
                         [this] { return now_; });
  ASSERT_TRUE(
      batcher.Submit(MakeTask({.id = 1, .adapter = adapter_a_}, completions_))
          .ok());
  EXPECT_EQ(batcher.RunOnce(), 1);  // no time has passed
  EXPECT_EQ(completions_.calls(1), 1);
}

// With workers: a lone request on an idle server runs at once, not after
// the hour-long delay; and requests arriving while a batch runs still
// batch together.
TEST(DynamicBatcherThreadedTest, AnIdleWorkerRunsALoneTaskAtOnce) {
  FakeEngine engine;
  Completions completions;
  BatcherOptions options = Options(8, absl::Hours(1));
  options.wait_when_idle = false;
  DynamicBatcher batcher(options, engine.Runner(), nullptr);
  batcher.Start();
  ASSERT_TRUE(
      batcher.Submit(MakeTask({.id = 1, .adapter = FakeAdapter()}, completions))
          .ok());
  ASSERT_TRUE(completions.WaitFor(1));  // times out long before an hour
  EXPECT_EQ(completions.calls(1), 1);
  EXPECT_EQ(engine.batches().size(), 1u);
}

TEST_F(BatcherRulesTest, NothingRunsBeforeTheDelayAndTheTaskRunsAtIt) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2)));
  ASSERT_TRUE(Submit(*batcher, {.id = 1, .adapter = adapter_a_}).ok());
  EXPECT_EQ(batcher->RunOnce(), 0);
  now_ += absl::Milliseconds(2) - absl::Microseconds(1);
  EXPECT_EQ(batcher->RunOnce(), 0);
  EXPECT_EQ(completions_.total(), 0);
  now_ += absl::Microseconds(1);
  EXPECT_EQ(batcher->RunOnce(), 1);
  ExpectResult(1, 1, 4, 1);
  EXPECT_EQ(completions_.result(1)->queue_time, absl::Milliseconds(2));
  EXPECT_EQ(batcher->queued_rows(), 0);
}

TEST_F(BatcherRulesTest, AFullBatchRunsAtOnce) {
  auto batcher = MakeBatcher(Options(4, absl::Hours(1)));
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 2}).ok());
  EXPECT_EQ(batcher->RunOnce(), 0);
  ASSERT_TRUE(
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 2}).ok());
  EXPECT_EQ(batcher->RunOnce(), 4);
  ExpectResult(1, 2, 4, 4);
  ExpectResult(2, 2, 4, 4);
}

TEST_F(BatcherRulesTest, GroupsByAdapterInArrivalOrderSkippingOthers) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2)));
  ASSERT_TRUE(Submit(*batcher, {.id = 1, .adapter = adapter_a_}).ok());
  ASSERT_TRUE(Submit(*batcher, {.id = 2, .adapter = adapter_b_}).ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 3, .adapter = adapter_a_, .rows = 2}).ok());
  ASSERT_TRUE(Submit(*batcher, {.id = 4, .adapter = nullptr}).ok());
  ASSERT_TRUE(Submit(*batcher, {.id = 5, .adapter = adapter_b_}).ok());
  now_ += absl::Milliseconds(2);

  EXPECT_EQ(batcher->RunOnce(), 3);  // A: tasks 1, 3
  EXPECT_EQ(batcher->RunOnce(), 2);  // B: tasks 2, 5 (2 is now the oldest)
  EXPECT_EQ(batcher->RunOnce(), 1);  // the backbone: task 4
  EXPECT_EQ(batcher->RunOnce(), 0);

  const std::vector<SeenBatch> batches = engine_.batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].adapter, adapter_a_.get());
  EXPECT_THAT(batches[0].row_ids, ElementsAre(100, 300, 301));
  EXPECT_EQ(batches[1].adapter, adapter_b_.get());
  EXPECT_THAT(batches[1].row_ids, ElementsAre(200, 500));
  EXPECT_EQ(batches[2].adapter, nullptr);
  EXPECT_THAT(batches[2].row_ids, ElementsAre(400));
}

TEST_F(BatcherRulesTest, ABatchNeverExceedsMaxRowsAndKeepsAdapterOrder) {
  auto batcher = MakeBatcher(Options(4, absl::Milliseconds(2)));
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 2}).ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 3}).ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 3, .adapter = adapter_a_, .rows = 1}).ok());
  // Task 2 does not fit beside task 1 and task 3 may not overtake it, so
  // task 1's batch cannot grow: it runs without waiting for the delay.
  EXPECT_EQ(batcher->RunOnce(), 2);
  EXPECT_EQ(batcher->RunOnce(), 4);  // tasks 2 + 3: full
  const std::vector<SeenBatch> batches = engine_.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_THAT(batches[0].row_ids, ElementsAre(100, 101));
  EXPECT_THAT(batches[1].row_ids, ElementsAre(200, 201, 202, 300));
  ExpectResult(1, 2, 4, 2);
  ExpectResult(2, 3, 4, 4);
  ExpectResult(3, 1, 4, 4);
}

TEST_F(BatcherRulesTest, ATaskLargerThanMaxRowsRunsAlone) {
  auto batcher = MakeBatcher(Options(4, absl::Milliseconds(2)));
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 6}).ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 1}).ok());
  EXPECT_EQ(batcher->RunOnce(), 6);
  EXPECT_EQ(batcher->RunOnce(), 0);  // task 2 waits for its delay
  now_ += absl::Milliseconds(2);
  EXPECT_EQ(batcher->RunOnce(), 1);
  ExpectResult(1, 6, 4, 6);
  ExpectResult(2, 1, 4, 1);
}

TEST_F(BatcherRulesTest, AnExpiredTaskIsDroppedAndNeverReachesTheEngine) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(5)));
  ASSERT_TRUE(Submit(*batcher, {.id = 1,
                                .adapter = adapter_a_,
                                .deadline = now_ + absl::Milliseconds(3)})
                  .ok());
  ASSERT_TRUE(Submit(*batcher, {.id = 2, .adapter = adapter_a_}).ok());
  now_ += absl::Milliseconds(3);
  EXPECT_EQ(batcher->RunOnce(), 0);
  EXPECT_EQ(completions_.calls(1), 1);
  absl::StatusOr<InferenceResult> expired = completions_.result(1);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(expired.status().message(),
              HasSubstr("expired after waiting 3ms in the queue"));
  EXPECT_EQ(batcher->queued_rows(), 1);

  now_ += absl::Milliseconds(2);
  EXPECT_EQ(batcher->RunOnce(), 1);
  const std::vector<SeenBatch> batches = engine_.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_THAT(batches[0].row_ids, ElementsAre(200));
  EXPECT_EQ(completions_.calls(1), 1);
}

TEST_F(BatcherRulesTest, ACancelledTaskIsDroppedWithCancelled) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2)));
  bool cancelled = false;
  ASSERT_TRUE(Submit(*batcher, {.id = 1,
                                .adapter = adapter_a_,
                                .is_cancelled = [&] { return cancelled; }})
                  .ok());
  cancelled = true;
  now_ += absl::Milliseconds(2);
  EXPECT_EQ(batcher->RunOnce(), 0);
  EXPECT_EQ(completions_.result(1).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_TRUE(engine_.batches().empty());
  EXPECT_EQ(batcher->queued_rows(), 0);
}

TEST_F(BatcherRulesTest, AFullQueueRefusesAtOnceAndAcceptsAfterABatchRuns) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2), /*capacity=*/4));
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 3}).ok());
  absl::Status refused =
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 2});
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(),
              HasSubstr("queue is full: 3 rows queued, capacity 4"));
  // Larger than the whole queue: refused even when the queue is empty.
  EXPECT_EQ(
      Submit(*batcher, {.id = 3, .adapter = adapter_b_, .rows = 5}).code(),
      absl::StatusCode::kResourceExhausted);

  now_ += absl::Milliseconds(2);
  EXPECT_EQ(batcher->RunOnce(), 3);
  EXPECT_TRUE(
      Submit(*batcher, {.id = 4, .adapter = adapter_a_, .rows = 2}).ok());
  batcher->Stop();
  EXPECT_EQ(completions_.calls(2), 0);  // refused tasks are never completed
  EXPECT_EQ(completions_.calls(3), 0);
  EXPECT_EQ(completions_.calls(4), 1);
}

TEST_F(BatcherRulesTest, SubmitRejectsTasksWithoutRowsOrCallback) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2)));
  EXPECT_EQ(batcher->Submit(nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  auto no_rows = MakeTask({.id = 1, .adapter = adapter_a_}, completions_);
  no_rows->rows.clear();
  EXPECT_EQ(batcher->Submit(std::move(no_rows)).code(),
            absl::StatusCode::kInvalidArgument);
  auto no_done = MakeTask({.id = 2, .adapter = adapter_a_}, completions_);
  no_done->done = nullptr;
  EXPECT_EQ(batcher->Submit(std::move(no_done)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batcher->queued_rows(), 0);
}

TEST_F(BatcherRulesTest, SubmitAfterStopIsUnavailable) {
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2)));
  batcher->Stop();
  EXPECT_EQ(Submit(*batcher, {.id = 1, .adapter = adapter_a_}).code(),
            absl::StatusCode::kUnavailable);
  batcher->Stop();  // idempotent
  EXPECT_EQ(completions_.calls(1), 0);
}

TEST_F(BatcherRulesTest, StopRunsEverythingQueued) {
  auto batcher = MakeBatcher(Options(2, absl::Hours(1)));
  for (int id = 1; id <= 5; ++id) {
    ASSERT_TRUE(Submit(*batcher,
                       {.id = id, .adapter = id % 2 ? adapter_a_ : adapter_b_})
                    .ok());
  }
  EXPECT_EQ(batcher->RunOnce(), 2);  // A: 1 + 3 is full
  batcher->Stop();
  EXPECT_EQ(completions_.total(), 5);
  for (int id = 1; id <= 5; ++id) {
    EXPECT_EQ(completions_.calls(id), 1);
    EXPECT_TRUE(completions_.result(id).ok());
  }
  EXPECT_EQ(batcher->queued_rows(), 0);
  for (const SeenBatch& batch : engine_.batches()) {
    EXPECT_LE(batch.row_ids.size(), 2u);
  }
}

TEST_F(BatcherRulesTest, AnEngineErrorReachesEveryTaskOfTheBatch) {
  auto batcher = MakeBatcher(Options(3, absl::Hours(1)));
  engine_.FailWith(absl::ResourceExhaustedError("out of device memory"));
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 2}).ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 1}).ok());
  EXPECT_EQ(batcher->RunOnce(), 3);
  for (int id : {1, 2}) {
    EXPECT_EQ(completions_.calls(id), 1);
    EXPECT_EQ(completions_.result(id).status(),
              absl::ResourceExhaustedError("out of device memory"));
  }
}

TEST_F(BatcherRulesTest, AWrongNumberOfEngineValuesIsInternal) {
  auto batcher = MakeBatcher(Options(2, absl::Hours(1)));
  engine_.DropLastValue();
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 2}).ok());
  EXPECT_EQ(batcher->RunOnce(), 2);
  absl::Status status = completions_.result(1).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("3 values for 2 rows of width 2"));
}

TEST_F(BatcherRulesTest, ResultsAreSplitPerTaskWithTimings) {
  auto batcher = MakeBatcher(Options(6, absl::Milliseconds(10)));
  engine_.DuringRun([this] { now_ += absl::Milliseconds(7); });
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 1, .rank = 2})
          .ok());
  now_ += absl::Milliseconds(1);
  ASSERT_TRUE(
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 3, .rank = 8})
          .ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 3, .adapter = adapter_a_, .rows = 2, .rank = 5})
          .ok());
  EXPECT_EQ(batcher->RunOnce(), 6);
  ExpectResult(1, 1, 2, 6);
  ExpectResult(2, 3, 8, 6);
  ExpectResult(3, 2, 5, 6);
  EXPECT_EQ(completions_.result(1)->queue_time, absl::Milliseconds(1));
  EXPECT_EQ(completions_.result(2)->queue_time, absl::ZeroDuration());
  EXPECT_EQ(completions_.result(3)->compute_time, absl::Milliseconds(7));
  // Each result names the target its task ran on.
  for (const auto& [id, rank] :
       {std::pair(1, 2), std::pair(2, 8), std::pair(3, 5)}) {
    const absl::StatusOr<InferenceResult> result = completions_.result(id);
    ASSERT_TRUE(result.ok());
    const auto* ran = std::get_if<AdapterAtRank>(&result->target);
    ASSERT_NE(ran, nullptr) << "task " << id;
    EXPECT_EQ(ran->adapter, adapter_a_) << "task " << id;
    EXPECT_EQ(ran->rank, rank) << "task " << id;
  }
}

TEST_F(BatcherRulesTest, RecordsQueueDepthQueueTimeAndDrops) {
  ServerMetrics metrics;
  auto batcher = MakeBatcher(Options(8, absl::Milliseconds(2)), &metrics);
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 3}).ok());
  ASSERT_TRUE(Submit(*batcher, {.id = 2,
                                .adapter = adapter_b_,
                                .deadline = now_ + absl::Milliseconds(1)})
                  .ok());
  ASSERT_TRUE(Submit(*batcher, {.id = 3,
                                .adapter = adapter_b_,
                                .is_cancelled = [] { return true; }})
                  .ok());
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dylora_queue_depth_rows 5"));
  now_ += absl::Milliseconds(2);
  EXPECT_EQ(batcher->RunOnce(), 3);
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dylora_queue_depth_rows 0"));
  EXPECT_THAT(text, HasSubstr("dylora_queue_duration_seconds_count 1"));
  EXPECT_THAT(
      text, HasSubstr(R"(dylora_dropped_requests_total{reason="deadline"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(dylora_dropped_requests_total{reason="cancelled"} 1)"));
}

// ---------------------------------------------------------------------------
// Behaviours shared by hand stepping and worker threads.

enum class Executor { kHandStepped, kOneWorker, kThreeWorkers };

class BatcherExecutorTest : public ::testing::TestWithParam<Executor> {
 protected:
  // A delay of an hour: only a full batch or Stop() runs anything, in both
  // modes, so the expected batches are exact.
  std::unique_ptr<DynamicBatcher> MakeBatcher(int64_t max_rows) {
    BatcherOptions options = Options(max_rows, absl::Hours(1));
    if (GetParam() == Executor::kHandStepped) {
      return std::make_unique<DynamicBatcher>(options, engine_.Runner(),
                                              nullptr, [this] { return now_; });
    }
    options.workers = GetParam() == Executor::kOneWorker ? 1 : 3;
    auto batcher =
        std::make_unique<DynamicBatcher>(options, engine_.Runner(), nullptr);
    batcher->Start();
    return batcher;
  }
  // Runs what is ready (hand-stepped) or waits for the workers.
  bool Complete(DynamicBatcher& batcher, int count) {
    if (GetParam() != Executor::kHandStepped)
      return completions_.WaitFor(count);
    while (batcher.RunOnce() > 0) {
    }
    return completions_.total() >= count;
  }
  absl::Status Submit(DynamicBatcher& batcher, const TaskSpec& spec) {
    return batcher.Submit(MakeTask(spec, completions_));
  }
  // Batches ordered by their first row, as threads may record them in any
  // order.
  std::vector<SeenBatch> SortedBatches() const {
    std::vector<SeenBatch> batches = engine_.batches();
    std::sort(batches.begin(), batches.end(),
              [](const SeenBatch& a, const SeenBatch& b) {
                return a.row_ids.front() < b.row_ids.front();
              });
    return batches;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  FakeEngine engine_;
  Completions completions_;
  std::shared_ptr<const ServedAdapter> adapter_a_ = FakeAdapter();
  std::shared_ptr<const ServedAdapter> adapter_b_ = FakeAdapter();
};

TEST_P(BatcherExecutorTest, SplitsAFullBatchBackPerTask) {
  auto batcher = MakeBatcher(6);
  ASSERT_TRUE(
      Submit(*batcher, {.id = 1, .adapter = adapter_a_, .rows = 1, .rank = 1})
          .ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 2, .adapter = adapter_a_, .rows = 3, .rank = 6})
          .ok());
  ASSERT_TRUE(
      Submit(*batcher, {.id = 3, .adapter = adapter_a_, .rows = 2, .rank = 3})
          .ok());
  ASSERT_TRUE(Complete(*batcher, 3));
  const int64_t ranks[] = {0, 1, 6, 3};
  const int rows[] = {0, 1, 3, 2};
  for (int id = 1; id <= 3; ++id) {
    absl::StatusOr<InferenceResult> result = completions_.result(id);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->values, ExpectedValues(id, rows[id], ranks[id]));
    EXPECT_EQ(result->batch_rows, 6);
  }
  batcher->Stop();
  ASSERT_EQ(engine_.batches().size(), 1u);
  for (int id = 1; id <= 3; ++id) EXPECT_EQ(completions_.calls(id), 1);
}

TEST_P(BatcherExecutorTest, StopDrainsTheQueueGroupedByAdapter) {
  auto batcher = MakeBatcher(100);
  const std::shared_ptr<const ServedAdapter> order[] = {
      adapter_a_, adapter_b_, adapter_a_, nullptr, adapter_b_, adapter_a_};
  for (int id = 1; id <= 6; ++id) {
    ASSERT_TRUE(
        Submit(*batcher, {.id = id, .adapter = order[id - 1], .rows = 2}).ok());
  }
  batcher->Stop();
  EXPECT_EQ(completions_.total(), 6);
  for (int id = 1; id <= 6; ++id) {
    EXPECT_EQ(completions_.calls(id), 1);
    absl::StatusOr<InferenceResult> result = completions_.result(id);
    ASSERT_TRUE(result.ok()) << result.status();
    // The fake engine gives backbone rows rank 0.
    EXPECT_EQ(result->values, ExpectedValues(id, 2, order[id - 1] ? 4 : 0));
  }
  const std::vector<SeenBatch> batches = SortedBatches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].adapter, adapter_a_.get());
  EXPECT_THAT(batches[0].row_ids, ElementsAre(100, 101, 300, 301, 600, 601));
  EXPECT_EQ(batches[1].adapter, adapter_b_.get());
  EXPECT_THAT(batches[1].row_ids, ElementsAre(200, 201, 500, 501));
  EXPECT_EQ(batches[2].adapter, nullptr);
  EXPECT_THAT(batches[2].row_ids, ElementsAre(400, 401));
  EXPECT_EQ(Submit(*batcher, {.id = 7, .adapter = adapter_a_}).code(),
            absl::StatusCode::kUnavailable);
}

INSTANTIATE_TEST_SUITE_P(Executors, BatcherExecutorTest,
                         ::testing::Values(Executor::kHandStepped,
                                           Executor::kOneWorker,
                                           Executor::kThreeWorkers),
                         [](const ::testing::TestParamInfo<Executor>& info) {
                           switch (info.param) {
                             case Executor::kHandStepped:
                               return std::string("HandStepped");
                             case Executor::kOneWorker:
                               return std::string("OneWorker");
                             case Executor::kThreeWorkers:
                               return std::string("ThreeWorkers");
                           }
                           return std::string("Unknown");
                         });

// ---------------------------------------------------------------------------
// Worker threads.

TEST(DynamicBatcherThreadedTest, AWorkerDropsAnExpiredTaskWithoutABatchReady) {
  FakeEngine engine;
  Completions completions;
  BatcherOptions options = Options(8, absl::Hours(1));
  DynamicBatcher batcher(options, engine.Runner(), nullptr);
  batcher.Start();
  ASSERT_TRUE(
      batcher
          .Submit(MakeTask({.id = 1,
                            .adapter = FakeAdapter(),
                            .deadline = absl::Now() + absl::Milliseconds(5)},
                           completions))
          .ok());
  ASSERT_TRUE(completions.WaitFor(1));
  EXPECT_EQ(completions.result(1).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(engine.batches().empty());
}

TEST(DynamicBatcherThreadedTest, ManyThreadsEachTaskCompletesOnceAndCorrectly) {
  constexpr int kThreads = 8;
  constexpr int kTasksPerThread = 200;
  constexpr int kTasks = kThreads * kTasksPerThread;
  constexpr int64_t kMaxRows = 16;
  const std::shared_ptr<const ServedAdapter> adapters[] = {FakeAdapter(),
                                                           FakeAdapter()};

  FakeEngine engine;
  BatcherOptions options = Options(kMaxRows, absl::Microseconds(200),
                                   /*capacity=*/kTasks * 5);
  options.workers = 2;
  DynamicBatcher batcher(options, engine.Runner(), nullptr);
  batcher.Start();

  std::vector<std::atomic<int>> calls(kTasks);
  std::atomic<int> wrong_results{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 random(1234 + t);
      for (int i = 0; i < kTasksPerThread; ++i) {
        const int id = t * kTasksPerThread + i;
        const int tag = static_cast<int>(random() % 2);
        const int rows = 1 + static_cast<int>(random() % 5);
        const int64_t rank = 1 + static_cast<int64_t>(random() % 8);
        auto task = std::make_unique<InferenceTask>();
        task->target = AdapterAtRank{adapters[tag], rank, "rank"};
        for (int r = 0; r < rows; ++r) {
          task->rows.push_back(TokenizedText{{RowId(id, r), tag}, {0, 0}});
        }
        task->done = [&, id, rows,
                      rank](absl::StatusOr<InferenceResult> result) {
          calls[id].fetch_add(1);
          if (!result.ok() ||
              result->values != ExpectedValues(id, rows, rank)) {
            wrong_results.fetch_add(1);
          }
        };
        ASSERT_TRUE(batcher.Submit(std::move(task)).ok());
      }
    });
  }
  for (std::thread& client : clients) client.join();
  batcher.Stop();

  for (int id = 0; id < kTasks; ++id) {
    ASSERT_EQ(calls[id].load(), 1) << "task " << id;
  }
  EXPECT_EQ(wrong_results.load(), 0);
  int64_t rows_run = 0;
  for (const SeenBatch& batch : engine.batches()) {
    EXPECT_LE(static_cast<int64_t>(batch.row_ids.size()), kMaxRows);
    const int tag = batch.tags.front();
    EXPECT_EQ(batch.adapter, adapters[tag].get());
    for (int32_t row_tag : batch.tags) EXPECT_EQ(row_tag, tag);
    rows_run += static_cast<int64_t>(batch.row_ids.size());
  }
  EXPECT_EQ(batcher.queued_rows(), 0);
  EXPECT_GT(rows_run, 0);
}

}  // namespace
}  // namespace dylora::serving
