// Decoding and encoding of KServe v2 tensors: BYTES elements from
// raw_input_contents (each element a 4-byte little-endian length followed by
// the bytes) or from contents.bytes_contents, FP32 outputs as raw
// little-endian bytes. Untrusted input: every length is checked.
//
// Torch-free and server-free: dylora-serve and dylora-client share it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora::kserve {

// Splits a raw BYTES tensor into its `expected` elements. INVALID_ARGUMENT
// when a length prefix runs past the end, the element count differs, or
// bytes are left over.
absl::StatusOr<std::vector<std::string>> DecodeRawBytesTensor(
    absl::string_view raw, int64_t expected, absl::string_view tensor_name);

// The inverse (used by clients and tests).
std::string EncodeRawBytesTensor(const std::vector<std::string>& elements);

// Little-endian IEEE float32 bytes.
std::string EncodeRawFp32(const float* values, size_t count);
std::vector<float> DecodeRawFp32(absl::string_view raw);

}  // namespace dylora::kserve
