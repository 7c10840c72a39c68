// The one place where absl::Status becomes grpc::Status (TF Serving's rule):
// an explicit code mapping and a cap on the message length, so a huge
// error text (e.g. one echoing client input) never bloats a response.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace dylora::serving {

inline constexpr size_t kMaxStatusMessageBytes = 1024;

grpc::Status ToGrpcStatus(const absl::Status& status);

// The gRPC code's canonical name ("OK", "NOT_FOUND", ...), for metrics.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace dylora::serving
