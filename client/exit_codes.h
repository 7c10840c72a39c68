// dylora-client's exit codes and the one-line messages for failed RPCs.
// Scripts (and the Docker HEALTHCHECK) rely on the codes; keep them stable.
#pragma once

#include <iosfwd>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace grpc {
class Status;
}

namespace dylora::client {

enum ExitCode : int {
  kExitOk = 0,
  kExitRequestFailed = 1,  // the server refused or failed a request
  kExitUsage = 2,          // bad flags, unreadable input files
  kExitUnreachable = 3,    // no connection to the server (UNAVAILABLE)
  kExitDeadline = 4,       // an RPC ran past --timeout-s
};

// The exit code for an RPC that ended with `code` (absl and gRPC codes have
// the same numbers).
ExitCode ExitCodeForRpc(absl::StatusCode code);

// grpc::Status -> absl::Status with the same code, message
//   "cannot reach <server> (UNAVAILABLE): <details>"
//   "<server> did not answer <rpc> within <timeout> (DEADLINE_EXCEEDED): ..."
//   "<server> refused <rpc> (<CODE>): <details>"
//   "<server> failed <rpc> (<CODE>): <details>"          (server-side faults)
// OK stays OK.
absl::Status RpcStatus(const grpc::Status& status, absl::string_view server,
                       absl::string_view rpc, absl::Duration timeout);

// Prints `status` (from RpcStatus or a malformed response) on one line and
// returns its exit code.
int ReportRpcError(const absl::Status& status, std::ostream& err);

// Prints "dylora-client: <message>" for a local problem and returns
// kExitUsage.
int ReportUsageError(const absl::Status& status, std::ostream& err);

}  // namespace dylora::client
