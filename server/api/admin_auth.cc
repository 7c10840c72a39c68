#include "server/api/admin_auth.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace dylora::serving {
namespace {

// Compares in time independent of where the strings differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

}  // namespace

absl::Status AdminAuth::Check(const grpc::ServerContextBase& context) const {
  if (token_.empty()) {
    if (insecure_) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "admin RPCs are disabled on this server: start dylora-serve with "
        "--admin-token-file FILE (clients then send \"authorization: Bearer "
        "<token>\") or, on a trusted network only, --admin-insecure");
  }
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "admin RPCs need an \"authorization: Bearer <token>\" header");
  }
  absl::string_view value(it->second.data(), it->second.size());
  // "Bearer" in any case, then one or more spaces, then the token.
  constexpr absl::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      value[kScheme.size()] != ' ') {
    return absl::UnauthenticatedError(
        "the authorization header must read \"Bearer <token>\"");
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (!ConstantTimeEquals(value, token_)) {
    return absl::PermissionDeniedError("the bearer token is not valid");
  }
  return absl::OkStatus();
}

}  // namespace dylora::serving
