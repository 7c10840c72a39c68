// Bearer-token check for admin RPCs (LoadAdapter, UnloadAdapter). With no
// token configured admin RPCs are open (bind to loopback or use TLS plus a
// token in production).
#pragma once

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/status.h"

namespace dylora::serving {

class AdminAuth {
 public:
  explicit AdminAuth(std::string token) : token_(std::move(token)) {}

  // OK when no token is configured or the call carries
  // "authorization: Bearer <token>"; UNAUTHENTICATED when the header is
  // missing or malformed, PERMISSION_DENIED when the token differs.
  absl::Status Check(const grpc::ServerContextBase& context) const;
  bool enabled() const { return !token_.empty(); }

 private:
  const std::string token_;
};

}  // namespace dylora::serving
