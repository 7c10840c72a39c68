// CallTracker: the bookkeeping every RPC shares: the in-flight gauge, the
// end-to-end latency and the request counter by protocol, adapter, rank and
// gRPC code. Create one when a call arrives, Complete() it exactly once.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dylora::serving {

class ServerMetrics;

class CallTracker {
 public:
  // `metrics` may be null.
  CallTracker(ServerMetrics* metrics, const char* protocol);

  // Records the outcome and returns it as a grpc::Status. `adapter` must be
  // a name known to the server (or empty): metric labels never take
  // arbitrary client strings.
  grpc::Status Complete(const absl::Status& status, absl::string_view adapter,
                        int64_t rank);

  absl::Time start() const { return start_; }

 private:
  ServerMetrics* const metrics_;
  const char* const protocol_;
  const absl::Time start_;
};

// gRPC's deadline as absl::Time (InfiniteFuture when the client set none).
absl::Time DeadlineOf(std::chrono::system_clock::time_point deadline);

}  // namespace dylora::serving
