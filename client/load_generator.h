// A closed-loop load generator: `concurrency` workers each send one request,
// wait for it, and send the next, until a request count or a duration is
// reached. Protocol-agnostic: the caller's callback sends one request and
// returns its status, so dylora-client bench and bench/serve_load_bench.cc
// share it.
//
//   LoadOptions options;
//   options.concurrency = 8;
//   options.max_requests = 1000;
//   absl::StatusOr<LoadReport> report = LoadGenerator::Run(
//       options, [&](int worker, int64_t sequence) { return SendOne(sequence);
//       });
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/latency_stats.h"

namespace dylora::client {

struct LoadProgress {
  int64_t completed = 0;  // requests finished, ok or not
  int64_t failed = 0;
  double elapsed_seconds = 0;
};

struct LoadOptions {
  int concurrency = 1;                             // workers, 1..1024
  int64_t max_requests = 0;                        // 0: no limit
  absl::Duration duration = absl::ZeroDuration();  // zero: no limit
  // At least one of max_requests and duration must be set; the run ends at
  // whichever comes first (requests in flight at the end still complete).
  absl::Duration progress_interval = absl::Seconds(1);
  // Called every progress_interval on the thread that called Run; may be empty.
  std::function<void(const LoadProgress&)> on_progress;
};

// Sends one request and returns its outcome. Called concurrently from the
// worker threads: `worker` in [0, concurrency), `sequence` numbers requests
// 0, 1, 2, ... across all workers (each exactly once).
using LoadRequestFn = std::function<absl::Status(int worker, int64_t sequence)>;

struct LoadReport {
  int64_t requests = 0;                        // sent: succeeded + failed
  std::vector<double> latencies_seconds;       // of the successful requests
  std::map<absl::StatusCode, int64_t> errors;  // failed, by code
  std::map<absl::StatusCode, std::string> first_errors;  // a message per code
  double seconds = 0;                                    // wall time of the run

  int64_t failed() const;
  int64_t succeeded() const { return requests - failed(); }
  double requests_per_second() const;
  LatencySummary latency() const { return Summarize(latencies_seconds); }
};

class LoadGenerator {
 public:
  // Runs the load on `options.concurrency` new threads and blocks until the
  // last request finished. INVALID_ARGUMENT for options without a limit or
  // with a concurrency out of range. `request` must be thread-safe.
  static absl::StatusOr<LoadReport> Run(const LoadOptions& options,
                                        const LoadRequestFn& request);
};

}  // namespace dylora::client
