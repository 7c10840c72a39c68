#include "client/load_generator.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace dylora::client {
namespace {

constexpr int kMaxConcurrency = 1024;

// One worker's results, merged after the run (no sharing while it runs).
struct WorkerResults {
  int64_t requests = 0;
  std::vector<double> latencies_seconds;
  std::map<absl::StatusCode, int64_t> errors;
  std::map<absl::StatusCode, std::string> first_errors;
};

// State shared by the workers and the thread that called Run.
struct SharedState {
  std::atomic<int64_t> next_sequence{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> failed{0};
  absl::Mutex mu;
  int finished_workers ABSL_GUARDED_BY(mu) = 0;
  int num_workers = 0;

  bool AllFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return finished_workers == num_workers;
  }
};

void RunWorker(int worker, const LoadOptions& options,
               const LoadRequestFn& request, SharedState& state,
               WorkerResults& results) {
  while (!state.stop.load(std::memory_order_relaxed)) {
    const int64_t sequence = state.next_sequence.fetch_add(1);
    if (options.max_requests > 0 && sequence >= options.max_requests) break;
    const absl::Time start = absl::Now();
    const absl::Status status = request(worker, sequence);
    const double latency = absl::ToDoubleSeconds(absl::Now() - start);
    ++results.requests;
    if (status.ok()) {
      results.latencies_seconds.push_back(latency);
    } else {
      ++results.errors[status.code()];
      results.first_errors.emplace(status.code(),
                                   std::string(status.message()));
      state.failed.fetch_add(1);
    }
    state.completed.fetch_add(1);
  }
  absl::MutexLock lock(&state.mu);
  ++state.finished_workers;
}

}  // namespace

int64_t LoadReport::failed() const {
  int64_t total = 0;
  for (const auto& [code, count] : errors) total += count;
  return total;
}

double LoadReport::requests_per_second() const {
  return seconds > 0 ? static_cast<double>(requests) / seconds : 0;
}

absl::StatusOr<LoadReport> LoadGenerator::Run(const LoadOptions& options,
                                              const LoadRequestFn& request) {
  if (options.concurrency < 1 || options.concurrency > kMaxConcurrency) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be in [1, ", kMaxConcurrency, "], not ",
                     options.concurrency));
  }
  if (options.max_requests < 0 || options.duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "request count and duration cannot be negative");
  }
  if (options.max_requests == 0 && options.duration == absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "give a request count, a duration or both");
  }
  if (options.progress_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the progress interval must be positive");
  }

  SharedState state;
  state.num_workers = options.concurrency;
  std::vector<WorkerResults> results(options.concurrency);
  const absl::Time start = absl::Now();
  const absl::Time end = options.duration > absl::ZeroDuration()
                             ? start + options.duration
                             : absl::InfiniteFuture();
  std::vector<std::thread> workers;
  workers.reserve(options.concurrency);
  for (int worker = 0; worker < options.concurrency; ++worker) {
    workers.emplace_back(RunWorker, worker, std::cref(options),
                         std::cref(request), std::ref(state),
                         std::ref(results[worker]));
  }

  // Wake every progress interval (and at the end of the duration) until
  // every worker has finished.
  absl::Time next_progress = start + options.progress_interval;
  while (true) {
    const absl::Time wake = std::min(next_progress, end);
    bool finished;
    {
      absl::MutexLock lock(&state.mu);
      finished = state.mu.AwaitWithDeadline(
          absl::Condition(&state, &SharedState::AllFinished), wake);
    }
    if (finished) break;
    const absl::Time now = absl::Now();
    if (now >= end) state.stop.store(true);
    if (now >= next_progress) {
      if (options.on_progress) {
        options.on_progress({state.completed.load(), state.failed.load(),
                             absl::ToDoubleSeconds(now - start)});
      }
      next_progress += options.progress_interval;
    }
  }
  for (std::thread& worker : workers) worker.join();

  LoadReport report;
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (WorkerResults& worker : results) {
    report.requests += worker.requests;
    report.latencies_seconds.insert(report.latencies_seconds.end(),
                                    worker.latencies_seconds.begin(),
                                    worker.latencies_seconds.end());
    for (const auto& [code, count] : worker.errors)
      report.errors[code] += count;
    for (auto& [code, message] : worker.first_errors) {
      report.first_errors.emplace(code, std::move(message));
    }
  }
  return report;
}

}  // namespace dylora::client
