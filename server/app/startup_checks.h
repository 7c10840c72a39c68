// Startup problems said in our words, before (or instead of) gRPC's own
// stderr lines: a TLS certificate and key that are unreadable or do not
// belong together, and why a listening port could not be opened.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace dylora::serving {

// OK when `cert_file` holds a PEM certificate chain and `key_file` the PEM
// private key of its first certificate; otherwise INVALID_ARGUMENT naming
// the file and what is wrong with it (NOT_FOUND for a missing file).
absl::Status CheckTlsKeyPair(const std::string& cert_file,
                             const std::string& key_file);

// Why host:port cannot be listened on, found by binding it ourselves: in use,
// not an address of this machine, needs privileges, or a host that does not
// resolve. The UNAVAILABLE status gRPC's failure should be reported as.
absl::Status DiagnoseListenFailure(const std::string& host, int port);

}  // namespace dylora::serving
