// The closed-loop load generator with a fake request (no server).
#include "client/load_generator.h"

#include <atomic>
#include <numeric>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(LoadGeneratorTest, SendsEachSequenceNumberOnce) {
  absl::Mutex mu;
  std::multiset<int64_t> seen;
  std::set<int> workers;
  LoadOptions options;
  options.concurrency = 4;
  options.max_requests = 100;
  auto report = LoadGenerator::Run(options, [&](int worker, int64_t sequence) {
    absl::MutexLock lock(&mu);
    seen.insert(sequence);
    workers.insert(worker);
    return absl::OkStatus();
  });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->requests, 100);
  EXPECT_EQ(report->succeeded(), 100);
  EXPECT_EQ(report->failed(), 0);
  EXPECT_EQ(report->latencies_seconds.size(), 100u);
  EXPECT_TRUE(report->errors.empty());
  ASSERT_EQ(seen.size(), 100u);
  for (int64_t sequence = 0; sequence < 100; ++sequence) {
    EXPECT_EQ(seen.count(sequence), 1u) << sequence;
  }
  for (int worker : workers) {
    EXPECT_GE(worker, 0);
    EXPECT_LT(worker, 4);
  }
}

TEST(LoadGeneratorTest, CountsErrorsByCodeAndKeepsAMessage) {
  LoadOptions options;
  options.concurrency = 3;
  options.max_requests = 50;
  auto report =
      LoadGenerator::Run(options, [](int, int64_t sequence) -> absl::Status {
        if (sequence % 10 == 0) return absl::UnavailableError("down");
        if (sequence % 25 == 1) return absl::DeadlineExceededError("slow");
        return absl::OkStatus();
      });
  ASSERT_TRUE(report.ok()) << report.status();
  // Unavailable: 0,10,20,30,40; deadline: 1,26.
  EXPECT_EQ(report->requests, 50);
  EXPECT_EQ(report->failed(), 7);
  EXPECT_EQ(report->succeeded(), 43);
  EXPECT_EQ(report->latencies_seconds.size(), 43u);
  EXPECT_THAT(
      report->errors,
      UnorderedElementsAre(Pair(absl::StatusCode::kUnavailable, 5),
                           Pair(absl::StatusCode::kDeadlineExceeded, 2)));
  EXPECT_EQ(report->first_errors.at(absl::StatusCode::kUnavailable), "down");
  EXPECT_EQ(report->first_errors.at(absl::StatusCode::kDeadlineExceeded),
            "slow");
}

TEST(LoadGeneratorTest, LatenciesCoverTheRequestTime) {
  LoadOptions options;
  options.concurrency = 2;
  options.max_requests = 6;
  auto report = LoadGenerator::Run(options, [](int, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    return absl::OkStatus();
  });
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->latencies_seconds.size(), 6u);
  for (double latency : report->latencies_seconds) EXPECT_GE(latency, 0.003);
  EXPECT_GT(report->seconds, 0);
  EXPECT_GT(report->requests_per_second(), 0);
}

TEST(LoadGeneratorTest, DurationEndsTheRunAndReportsProgress) {
  std::atomic<int> progress_calls{0};
  int64_t last_completed = 0;
  bool monotonic = true;
  LoadOptions options;
  options.concurrency = 2;
  options.duration = absl::Milliseconds(200);
  options.progress_interval = absl::Milliseconds(10);
  options.on_progress = [&](const LoadProgress& progress) {
    ++progress_calls;
    monotonic = monotonic && progress.completed >= last_completed;
    last_completed = progress.completed;
  };
  auto report = LoadGenerator::Run(options, [](int, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return absl::OkStatus();
  });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->requests, 0);
  EXPECT_GE(progress_calls.load(), 1);
  EXPECT_TRUE(monotonic);
  EXPECT_LE(last_completed, report->requests);
}

TEST(LoadGeneratorTest, WhicheverLimitComesFirstWins) {
  LoadOptions options;
  options.concurrency = 2;
  options.max_requests = 10;
  options.duration = absl::Hours(1);
  auto report = LoadGenerator::Run(
      options, [](int, int64_t) { return absl::OkStatus(); });
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->requests, 10);
}

TEST(LoadGeneratorTest, RefusesOptionsWithoutALimit) {
  auto request = [](int, int64_t) { return absl::OkStatus(); };
  LoadOptions no_limit;
  auto unlimited = LoadGenerator::Run(no_limit, request);
  ASSERT_FALSE(unlimited.ok());
  EXPECT_THAT(std::string(unlimited.status().message()),
              HasSubstr("request count, a duration"));
  LoadOptions no_workers;
  no_workers.max_requests = 1;
  no_workers.concurrency = 0;
  EXPECT_FALSE(LoadGenerator::Run(no_workers, request).ok());
  LoadOptions negative;
  negative.max_requests = -1;
  EXPECT_FALSE(LoadGenerator::Run(negative, request).ok());
}

TEST(LoadReportTest, PercentilesAndCounts) {
  LoadReport report;
  report.latencies_seconds.resize(100);
  std::iota(report.latencies_seconds.begin(), report.latencies_seconds.end(),
            1.0);
  report.errors[absl::StatusCode::kUnavailable] = 3;
  report.errors[absl::StatusCode::kInternal] = 2;
  report.requests = 105;
  report.seconds = 2;
  const LatencySummary latency = report.latency();
  EXPECT_EQ(latency.p50, 50);
  EXPECT_EQ(latency.p90, 90);
  EXPECT_EQ(latency.p99, 99);
  EXPECT_EQ(latency.max, 100);
  EXPECT_EQ(report.failed(), 5);
  EXPECT_EQ(report.succeeded(), 100);
  EXPECT_DOUBLE_EQ(report.requests_per_second(), 52.5);
}

}  // namespace
}  // namespace dylora::client
