// Bridge between safetensors files and LibTorch tensors. Loading copies the
// bytes into new CPU tensors (the mapping may go away; tensors outlive it).
// Saving accepts tensors on any device and with any strides: contiguous CPU
// copies are written.
//
// Byte order: safetensors is little-endian and so are all hosts we support;
// big-endian hosts are NOT supported (bytes are copied verbatim).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace dylora {

// DType <-> at::ScalarType. Unsupported torch dtypes (complex, quantized,
// float8, unsigned > 8 bits) are INVALID_ARGUMENT.
at::ScalarType ToScalarType(DType dtype);
absl::StatusOr<DType> FromScalarType(at::ScalarType type);

// Copies one tensor of `file` into a new CPU tensor of the matching dtype.
// `info` must come from `file` (checked).
absl::StatusOr<at::Tensor> ToTensor(const SafetensorsFile& file,
                                    const TensorInfo& info);
// As ToTensor, then converted to float32 (F16/BF16/F64/ints/bool widen or
// narrow as at::Tensor::to does).
absl::StatusOr<at::Tensor> ToFloat32Tensor(const SafetensorsFile& file,
                                           const TensorInfo& info);

// OK when `tensor` is not floating point or holds only finite values;
// otherwise INVALID_ARGUMENT "<origin>: tensor '<name>' holds N NaN or Inf
// values". Weights a model computes with are checked at load: one NaN
// would otherwise reach only the rows (and batches) that touch it, so a
// client's answer would depend on other clients' traffic.
absl::Status CheckFinite(const at::Tensor& tensor, absl::string_view origin,
                         absl::string_view name);

// Opens, validates and copies every tensor of a safetensors file.
absl::StatusOr<std::map<std::string, at::Tensor>> LoadTensors(
    const std::string& path);

// Writes tensors (in the given order) and metadata atomically.
absl::Status SaveTensors(
    const std::string& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// The same as bytes (for tests and network payloads).
absl::StatusOr<std::string> SerializeTensors(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace dylora
