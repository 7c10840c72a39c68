// int8 linear layers for CPU serving, through LibTorch's own quantized
// kernels (fbgemm's dynamic linear: int8 weights quantized once, symmetric
// per output channel, to 7 bits so AVX2 never saturates; activations
// quantized per call, per tensor, to 8 bits; fp32 in, fp32 out, bias added
// in fp32).
//
// A QuantizedLinears is a LinearHook over a set of layers: the backbone's
// (QuantizeEncoderLinears), or an adapter's merged weights for one rank
// with the backbone's int8 layers behind it for the layers the adapter does
// not touch. Immutable after Create; Apply may run on many threads.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/linear_hook.h"

namespace dylora {

class Encoder;

// OK when int8 linears can run for an encoder on `device` with `dtype`:
// a CPU device, float32 weights and fbgemm among LibTorch's quantized
// engines (x86 with AVX2). Otherwise FAILED_PRECONDITION saying which.
absl::Status CheckInt8Supported(c10::Device device, c10::ScalarType dtype);

struct QuantizedLinearSource {
  LinearId id;
  at::Tensor weight;  // [out, in] float
  at::Tensor bias;    // [out] float, or undefined
};

class QuantizedLinears : public LinearHook {
 public:
  // Quantizes and packs each layer. Layers not listed fall through to
  // `fallback` (when given) or to fp32 x W^T + b. INTERNAL for a LibTorch
  // failure.
  static absl::StatusOr<std::shared_ptr<const QuantizedLinears>> Create(
      const std::vector<QuantizedLinearSource>& layers,
      std::shared_ptr<const LinearHook> fallback = nullptr);

  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override;

  // Bytes of the int8 weights, scales and biases held (not the fallback's).
  int64_t bytes() const { return bytes_; }
  size_t size() const { return packed_.size(); }

  // Opaque: fbgemm's packed weights and bias for one layer.
  struct Packed;

 private:
  QuantizedLinears() = default;
  absl::flat_hash_map<LinearId, std::shared_ptr<const Packed>> packed_;
  std::shared_ptr<const LinearHook> fallback_;
  int64_t bytes_ = 0;
};

// Every linear layer of every encoder layer, quantized (the pooler stays
// fp32: it runs once per row, not per token).
absl::StatusOr<std::shared_ptr<const QuantizedLinears>> QuantizeEncoderLinears(
    const Encoder& encoder);

}  // namespace dylora
