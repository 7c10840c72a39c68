// The seam between the frozen backbone and adapters. The encoder never owns
// adapter weights: it calls a LinearHook for every linear layer an adapter
// may target, so ONE read-only backbone serves many adapters and ranks at
// once (server) or trains one adapter (trainer).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace dylora {

// The linear layers of a BERT/RoBERTa encoder layer that adapters can target,
// named as in PEFT's target_modules.
enum class LinearKind {
  kQuery,            // attention.self.query
  kKey,              // attention.self.key
  kValue,            // attention.self.value
  kAttentionOutput,  // attention.output.dense
  kIntermediate,     // intermediate.dense
  kOutput,           // output.dense
};

// "query" | "key" | "value" | "attention.output" | "intermediate" | "output".
absl::string_view LinearKindName(LinearKind kind);

struct LinearId {
  int64_t layer = 0;
  LinearKind kind = LinearKind::kQuery;
  // Hugging Face module path, e.g. "encoder.layer.3.attention.self.query"
  // (without any "bert."/"roberta." prefix).
  std::string ModulePath() const;

  friend bool operator==(const LinearId& a, const LinearId& b) {
    return a.layer == b.layer && a.kind == b.kind;
  }
  friend bool operator!=(const LinearId& a, const LinearId& b) {
    return !(a == b);
  }
  // Hashable as an absl::flat_hash_map / flat_hash_set key.
  template <typename H>
  friend H AbslHashValue(H h, const LinearId& id) {
    return H::combine(std::move(h), id.layer, static_cast<int>(id.kind));
  }
};

// Every kind, in the order they run inside a layer.
inline constexpr LinearKind kAllLinearKinds[] = {
    LinearKind::kQuery,        LinearKind::kKey,
    LinearKind::kValue,        LinearKind::kAttentionOutput,
    LinearKind::kIntermediate, LinearKind::kOutput};

// Computes one linear layer given the frozen weight [out, in] and bias [out].
// Implementations must be thread-safe for concurrent Apply calls when shared.
class LinearHook {
 public:
  virtual ~LinearHook() = default;
  // x: [..., in]. Returns [..., out]. The default is x W^T + b.
  virtual at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                           const at::Tensor& weight,
                           const at::Tensor& bias) const = 0;

  // Query, key and value of `layer`, which all read `x`, in one call when
  // the hook can (one GEMM on the three weights stacked: one weight read
  // and one kernel launch instead of three). nullopt, the default: the
  // encoder calls Apply for each. Each result is [..., out] as from Apply
  // (possibly a strided view of one [..., 3 * out] product).
  virtual std::optional<std::array<at::Tensor, 3>> ApplyQueryKeyValue(
      int64_t layer, const at::Tensor& x) const {
    (void)layer;
    (void)x;
    return std::nullopt;
  }
};

}  // namespace dylora
