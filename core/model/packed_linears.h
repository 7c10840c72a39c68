// Linear layers with their weights laid out once, at load, for the CPU
// kernel that serves them, so no call re-reads and repacks a weight:
//   fp32  oneDNN's inner product on weights reordered to its blocked layout
//         (LibTorch's mkldnn::_linear_pointwise). A plain x W^T + b through
//         MKL repacks the whole weight on every call; with the 25-token
//         batches of one sentence that copy costs as much as the
//         multiplication (measured: all of MiniLM's linears at 25 tokens,
//         2 threads, 7.7 ms plain against 5.5 ms reordered).
//   int8  fbgemm's dynamic linear: int8 weights quantized once, symmetric
//         per output channel, to 7 bits so AVX2 never saturates;
//         activations quantized per call, per tensor, to 8 bits; fp32 in,
//         fp32 out, bias added in fp32.
//
// A PackedLinears is a LinearHook over a set of layers: the backbone's
// (PackEncoderLinears), or an adapter's merged weights for one rank with
// the backbone's packed layers behind it for the layers the adapter does
// not touch. Immutable after Create; Apply may run on many threads.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/linear_hook.h"

namespace dylora {

class Encoder;

// What served linear layers compute in (dylora-serve --precision).
enum class Precision { kFp32, kInt8 };
absl::string_view PrecisionName(Precision precision);
// "fp32" or "int8"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Precision> ParsePrecision(absl::string_view name);

// OK when packed linears of `precision` can run for an encoder on `device`
// with `dtype`: a CPU device, float32 weights, and LibTorch's kernel for it
// (oneDNN for fp32; fbgemm, x86 with AVX2, for int8). Otherwise
// FAILED_PRECONDITION saying which is missing.
absl::Status CheckPackedLinearsSupported(Precision precision,
                                         c10::Device device,
                                         c10::ScalarType dtype);

struct PackedLinearSource {
  LinearId id;
  at::Tensor weight;  // [out, in] float
  at::Tensor bias;    // [out] float, or undefined
};

class PackedLinears : public LinearHook {
 public:
  // Packs each layer for `precision` (which must pass
  // CheckPackedLinearsSupported). Layers not listed fall through to
  // `fallback` (when given) or to x W^T + b. INTERNAL for a LibTorch
  // failure.
  static absl::StatusOr<std::shared_ptr<const PackedLinears>> Create(
      Precision precision, const std::vector<PackedLinearSource>& layers,
      std::shared_ptr<const LinearHook> fallback = nullptr);

  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override;
  // One GEMM on the layer's query, key and value weights stacked (packed at
  // Create when all three are listed); the fallback's when none of them is
  // listed; otherwise nullopt.
  std::optional<std::array<at::Tensor, 3>> ApplyQueryKeyValue(
      int64_t layer, const at::Tensor& x) const override;

  Precision precision() const { return precision_; }
  // Bytes of the packed weights, scales and biases held (not the
  // fallback's), stacked query/key/value copies included.
  int64_t bytes() const { return bytes_; }
  size_t size() const { return packed_.size(); }

  // Opaque: one layer's packed weight and bias.
  struct Packed;

 private:
  explicit PackedLinears(Precision precision) : precision_(precision) {}
  const Precision precision_;
  at::Tensor Run(const Packed& packed, const at::Tensor& x) const;

  absl::flat_hash_map<LinearId, std::shared_ptr<const Packed>> packed_;
  // Per layer: query, key and value stacked ([3 * out, in]).
  absl::flat_hash_map<int64_t, std::shared_ptr<const Packed>> query_key_value_;
  std::shared_ptr<const LinearHook> fallback_;
  int64_t bytes_ = 0;
};

// Every linear layer of every encoder layer, packed for `precision` (the
// pooler stays as it is: it runs once per row, not per token).
absl::StatusOr<std::shared_ptr<const PackedLinears>> PackEncoderLinears(
    const Encoder& encoder, Precision precision);

}  // namespace dylora
