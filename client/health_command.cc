#include "client/health_command.h"

#include <ostream>

#include "client/exit_codes.h"

namespace dylora::client {

int RunHealth(const HealthOptions& options, std::ostream& out,
              std::ostream& err) {
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(options.service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  (*connection)->Prepare(context);
  const absl::Status status =
      (*connection)
          ->Check((*connection)->health().Check(&context, request, &response),
                  "Health.Check");
  if (!status.ok()) return ReportRpcError(status, err);
  out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
             response.status())
      << "\n";
  out.flush();
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitRequestFailed;
}

}  // namespace dylora::client
