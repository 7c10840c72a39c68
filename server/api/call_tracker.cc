#include "server/api/call_tracker.h"

#include "server/api/status_conversion.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {

CallTracker::CallTracker(ServerMetrics* metrics, const char* protocol)
    : metrics_(metrics), protocol_(protocol), start_(absl::Now()) {
  if (metrics_ != nullptr) metrics_->AddInflight(1);
}

grpc::Status CallTracker::Complete(const absl::Status& status,
                                   absl::string_view adapter, int64_t rank) {
  grpc::Status grpc_status = ToGrpcStatus(status);
  if (metrics_ != nullptr) {
    metrics_->AddInflight(-1);
    metrics_->RecordRequest(protocol_, adapter, rank,
                            GrpcCodeName(grpc_status.error_code()),
                            absl::ToDoubleSeconds(absl::Now() - start_));
  }
  return grpc_status;
}

absl::Time DeadlineOf(std::chrono::system_clock::time_point deadline) {
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

}  // namespace dylora::serving
