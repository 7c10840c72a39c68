// dylora-client health: grpc.health.v1 Check of the whole server ("") or one
// service. Prints the status; exit 0 only for SERVING (Docker HEALTHCHECK).
#pragma once

#include <iosfwd>
#include <string>

#include "client/connection.h"

namespace dylora::client {

struct HealthOptions {
  ConnectionOptions connection;
  std::string service;  // "": the server as a whole
};

// 0 for SERVING, 1 for any other status (NOT_SERVING, SERVICE_UNKNOWN) or a
// refused check (NOT_FOUND: unknown service), 3 or 4 when unreachable.
int RunHealth(const HealthOptions& options, std::ostream& out,
              std::ostream& err);

}  // namespace dylora::client
