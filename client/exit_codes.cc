#include "client/exit_codes.h"

#include <grpcpp/support/status.h>

#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace dylora::client {

ExitCode ExitCodeForRpc(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kUnavailable:
      return kExitUnreachable;
    case absl::StatusCode::kDeadlineExceeded:
      return kExitDeadline;
    default:
      return kExitRequestFailed;
  }
}

absl::Status RpcStatus(const grpc::Status& status, absl::string_view server,
                       absl::string_view rpc, absl::Duration timeout) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  const std::string code_name = absl::StatusCodeToString(code);
  const std::string& details = status.error_message();
  std::string message;
  switch (code) {
    case absl::StatusCode::kUnavailable:
      message = absl::StrCat("cannot reach ", server, " (", code_name,
                             "): ", details);
      break;
    case absl::StatusCode::kDeadlineExceeded:
      message = absl::StrCat(server, " did not answer ", rpc, " within ",
                             absl::FormatDuration(timeout), " (", code_name,
                             "): ", details);
      break;
    // Faults of the server itself rather than of the request.
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kAborted:
      message = absl::StrCat(server, " failed ", rpc, " (", code_name,
                             "): ", details);
      break;
    default:
      message = absl::StrCat(server, " refused ", rpc, " (", code_name,
                             "): ", details);
  }
  return absl::Status(code, message);
}

int ReportRpcError(const absl::Status& status, std::ostream& err) {
  err << status.message() << "\n";
  return ExitCodeForRpc(status.code());
}

int ReportUsageError(const absl::Status& status, std::ostream& err) {
  err << "dylora-client: " << status.message() << "\n";
  return kExitUsage;
}

}  // namespace dylora::client
