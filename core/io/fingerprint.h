// A stable content fingerprint of a safetensors file, used to check that an
// adapter was trained on the backbone it is loaded onto.
//
// Definition (version 1; changing it invalidates stored fingerprints):
// tensors sorted by name; for each, its name, dtype name, rank, dims and
// byte length feed FNV-1a-64, and its data bytes feed four FNV-style lanes
// over little-endian 64-bit words (lane = (lane ^ word) * prime;
// lane ^= lane >> 32), a tail of < 8 bytes going byte-wise into the FNV-1a
// state. The lanes are folded into the FNV-1a state, which is finished with
// the splitmix64 finalizer. Metadata and the header layout do not count, so
// a file re-saved with different header order or padding keeps its
// fingerprint. Result: 16 lowercase hex digits.
//
// Thread-safe (pure function). A 90 MB file takes a few tens of ms.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace dylora {

absl::StatusOr<std::string> FingerprintSafetensors(const SafetensorsFile& file);

// Opens `path` and fingerprints it.
absl::StatusOr<std::string> FingerprintSafetensorsFile(const std::string& path);

}  // namespace dylora
