#include "core/model/packed_linears.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {

struct PackedLinears::Packed {
  // int8: fbgemm's packed weight, scales and bias.
  c10::intrusive_ptr<LinearPackedParamsBase> int8;
  // fp32: the weight in oneDNN's layout (an opaque mkldnn tensor), and the
  // dense bias.
  at::Tensor fp32_weight;
  std::optional<at::Tensor> fp32_bias;
};

namespace {

// Full 8-bit activations (quantized per call, per tensor). PyTorch's fbgemm
// default reduces them to 7 bits instead, because AVX2's u8 x s8 pair sums
// can saturate int16; here the weights give up that bit (below), which
// costs less: on all-MiniLM-L6-v2 and SST-2 the worst sentence-embedding
// cosine to fp32 is 0.953 with 7-bit activations, 0.982 with 7-bit weights.
constexpr bool kReduceRange = false;
// Weights in [-63, 63] (7 bits, per output channel), so that a pair of
// 8-bit activations times two weights stays within int16 (2 * 255 * 63 =
// 32130) and AVX2's saturating multiply-add never clips.
constexpr double kWeightLevels = 63.0;

// LibTorch's oneDNN linear ops, registered by its CPU build (the ones
// TorchInductor uses for frozen CPU models); absent from builds without
// oneDNN.
constexpr const char* kReorderOp = "mkldnn::_reorder_linear_weight";
constexpr const char* kLinearOp = "mkldnn::_linear_pointwise";

bool HasCpuKernel(const char* name) {
  const std::optional<c10::OperatorHandle> op =
      c10::Dispatcher::singleton().findSchema({name, ""});
  return op.has_value() && op->hasKernelForDispatchKey(c10::DispatchKey::CPU);
}

c10::intrusive_ptr<LinearPackedParamsBase> PackInt8(const at::Tensor& weight,
                                                    const at::Tensor& bias) {
  // Symmetric per output channel: scale = max |w| / kWeightLevels, zero
  // point 0.
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  const at::Tensor scales =
      w.abs().amax(1).clamp_min(1e-12).div(kWeightLevels).to(at::kDouble);
  const at::Tensor zero_points = at::zeros({w.size(0)}, at::kLong);
  const at::Tensor q =
      at::quantize_per_channel(w, scales, zero_points, 0, at::kQInt8);
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(
              at::Tensor, std::optional<at::Tensor>)>();
  std::optional<at::Tensor> b;
  if (bias.defined()) b = bias.to(at::kFloat).contiguous();
  return prepack.call(q, b);
}

// No batch size: the layout oneDNN picks for any number of rows, so one
// reordered weight serves every batch (tests/core/model/packed_linears_test
// checks row counts from 1 to 1000 against x W^T + b).
at::Tensor ReorderFp32(const at::Tensor& weight) {
  static const auto reorder =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow(kReorderOp, "")
          .typed<at::Tensor(const at::Tensor&, std::optional<int64_t>)>();
  return reorder.call(weight.to(at::kFloat).contiguous(), std::nullopt);
}

at::Tensor LinearFp32(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias) {
  static const auto linear =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow(kLinearOp, "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                            const std::optional<at::Tensor>&, std::string_view,
                            c10::List<std::optional<at::Scalar>>,
                            std::optional<std::string_view>)>();
  return linear.call(x, weight, bias, "none",
                     c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

}  // namespace

absl::string_view PrecisionName(Precision precision) {
  return precision == Precision::kInt8 ? "int8" : "fp32";
}

absl::StatusOr<Precision> ParsePrecision(absl::string_view name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "int8") return Precision::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("precision \"", name, "\" is neither fp32 nor int8"));
}

absl::Status CheckPackedLinearsSupported(Precision precision,
                                         c10::Device device,
                                         c10::ScalarType dtype) {
  const absl::string_view name = PrecisionName(precision);
  if (!device.is_cpu()) {
    return absl::FailedPreconditionError(
        absl::StrCat("packed ", name, " linears run on the CPU only, not on ",
                     device.str()));
  }
  if (dtype != at::kFloat) {
    return absl::FailedPreconditionError(
        absl::StrCat("packed ", name, " linears need float32 weights, not ",
                     c10::toString(dtype)));
  }
  if (precision == Precision::kFp32) {
    if (!at::hasMKLDNN() || !HasCpuKernel(kReorderOp) ||
        !HasCpuKernel(kLinearOp)) {
      return absl::FailedPreconditionError(
          "packed fp32 linears need LibTorch's oneDNN (mkldnn) CPU kernels, "
          "which this build lacks");
    }
    return absl::OkStatus();
  }
  const auto& engines = at::globalContext().supportedQEngines();
  if (std::find(engines.begin(), engines.end(), at::QEngine::FBGEMM) ==
      engines.end()) {
    return absl::FailedPreconditionError(
        "int8 precision needs LibTorch's fbgemm quantized engine, which this "
        "CPU or build does not support (x86 with AVX2 required)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const PackedLinears>> PackedLinears::Create(
    Precision precision, const std::vector<PackedLinearSource>& layers,
    std::shared_ptr<const LinearHook> fallback) {
  return CallTorch(
      absl::StrCat("packing linear layers for ", PrecisionName(precision)),
      [&] {
        if (precision == Precision::kInt8) {
          // The prepack op dispatches on the global engine: select fbgemm
          // once.
          static const bool engine_selected = [] {
            at::globalContext().setQEngine(at::QEngine::FBGEMM);
            return true;
          }();
          (void)engine_selected;
        }
        std::shared_ptr<PackedLinears> result(new PackedLinears(precision));
        result->fallback_ = std::move(fallback);
        // Packs one weight [out, in] and bias; counts its bytes.
        auto pack = [&](const at::Tensor& weight, const at::Tensor& bias) {
          auto packed = std::make_shared<Packed>();
          const int64_t bias_bytes = bias.defined() ? bias.numel() * 4 : 0;
          if (precision == Precision::kInt8) {
            packed->int8 = PackInt8(weight, bias);
            // int8 weights, one double scale and one int64 zero point per
            // row.
            result->bytes_ += weight.numel() + weight.size(0) * 16 + bias_bytes;
          } else {
            packed->fp32_weight = ReorderFp32(weight);
            if (bias.defined()) {
              packed->fp32_bias = bias.to(at::kFloat).contiguous();
            }
            result->bytes_ += weight.numel() * 4 + bias_bytes;
          }
          return std::shared_ptr<const Packed>(std::move(packed));
        };
        absl::flat_hash_map<int64_t, std::array<const PackedLinearSource*, 3>>
            attention_inputs;
        for (const PackedLinearSource& layer : layers) {
          result->packed_[layer.id] = pack(layer.weight, layer.bias);
          const int slot = layer.id.kind == LinearKind::kQuery   ? 0
                           : layer.id.kind == LinearKind::kKey   ? 1
                           : layer.id.kind == LinearKind::kValue ? 2
                                                                 : -1;
          if (slot >= 0) attention_inputs[layer.id.layer][slot] = &layer;
        }
        // Stacked per output channel, so each row keeps its own int8 scale
        // and the three outputs are exactly the separate products.
        for (const auto& [index, qkv] : attention_inputs) {
          if (qkv[0] == nullptr || qkv[1] == nullptr || qkv[2] == nullptr)
            continue;
          std::vector<at::Tensor> weights, biases;
          for (const PackedLinearSource* source : qkv) {
            weights.push_back(source->weight.to(at::kFloat));
            biases.push_back(
                source->bias.defined()
                    ? source->bias.to(at::kFloat)
                    : at::zeros({source->weight.size(0)}, at::kFloat));
          }
          result->query_key_value_[index] =
              pack(at::cat(weights, 0), at::cat(biases, 0));
        }
        return std::shared_ptr<const PackedLinears>(std::move(result));
      });
}

at::Tensor PackedLinears::Run(const Packed& packed, const at::Tensor& x) const {
  if (precision_ == Precision::kInt8) {
    return packed.int8->apply_dynamic(x.contiguous(), kReduceRange);
  }
  return LinearFp32(x, packed.fp32_weight, packed.fp32_bias);
}

at::Tensor PackedLinears::Apply(const LinearId& id, const at::Tensor& x,
                                const at::Tensor& weight,
                                const at::Tensor& bias) const {
  auto it = packed_.find(id);
  if (it == packed_.end()) {
    return fallback_ != nullptr ? fallback_->Apply(id, x, weight, bias)
                                : at::linear(x, weight, bias);
  }
  return Run(*it->second, x);
}

std::optional<std::array<at::Tensor, 3>> PackedLinears::ApplyQueryKeyValue(
    int64_t layer, const at::Tensor& x) const {
  if (auto it = query_key_value_.find(layer); it != query_key_value_.end()) {
    const at::Tensor y = Run(*it->second, x);
    const int64_t out = y.size(-1) / 3;
    return std::array<at::Tensor, 3>{y.narrow(-1, 0, out),
                                     y.narrow(-1, out, out),
                                     y.narrow(-1, 2 * out, out)};
  }
  for (LinearKind kind :
       {LinearKind::kQuery, LinearKind::kKey, LinearKind::kValue}) {
    if (packed_.contains(LinearId{layer, kind})) return std::nullopt;
  }
  // None of the three is ours: the fallback computes all of them.
  return fallback_ != nullptr ? fallback_->ApplyQueryKeyValue(layer, x)
                              : std::nullopt;
}

absl::StatusOr<std::shared_ptr<const PackedLinears>> PackEncoderLinears(
    const Encoder& encoder, Precision precision) {
  DYLORA_RETURN_IF_ERROR(CheckPackedLinearsSupported(
      precision, encoder.device(), encoder.dtype()));
  std::vector<PackedLinearSource> layers;
  for (const LinearId& id : encoder.LinearIds(
           {std::begin(kAllLinearKinds), std::end(kAllLinearKinds)})) {
    DYLORA_ASSIGN_OR_RETURN(at::Tensor weight, encoder.LinearWeight(id));
    DYLORA_ASSIGN_OR_RETURN(at::Tensor bias, encoder.LinearBias(id));
    layers.push_back({id, weight, bias});
  }
  return PackedLinears::Create(precision, layers);
}

}  // namespace dylora
