// Who may call the admin RPCs (LoadAdapter, UnloadAdapter): closed by
// default. With a token (--admin-token-file) a call needs
// "authorization: Bearer <token>" (scheme in any case, RFC 7235; token
// compared in constant time); with --admin-insecure anyone who reaches the
// port may; with neither nobody may.
#pragma once

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/status.h"

namespace dylora::serving {

class AdminAuth {
 public:
  // `token` empty: no token; then `insecure` opens the admin RPCs to all.
  AdminAuth(std::string token, bool insecure)
      : token_(std::move(token)), insecure_(insecure) {}

  // With a token: OK when the call carries it, UNAUTHENTICATED when the
  // header is missing or malformed, PERMISSION_DENIED when the token
  // differs. Without one: OK when insecure, else PERMISSION_DENIED saying
  // how to enable admin RPCs.
  absl::Status Check(const grpc::ServerContextBase& context) const;

 private:
  const std::string token_;
  const bool insecure_;
};

}  // namespace dylora::serving
