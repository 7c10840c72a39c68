#include "core/model/quantized_linears.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {

struct QuantizedLinears::Packed {
  c10::intrusive_ptr<LinearPackedParamsBase> params;
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

c10::intrusive_ptr<LinearPackedParamsBase> Prepack(const at::Tensor& weight,
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

}  // namespace

absl::Status CheckInt8Supported(c10::Device device, c10::ScalarType dtype) {
  if (!device.is_cpu()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "int8 precision runs on the CPU only (fbgemm), not on ", device.str()));
  }
  if (dtype != at::kFloat) {
    return absl::FailedPreconditionError(
        absl::StrCat("int8 precision needs float32 backbone weights, not ",
                     c10::toString(dtype)));
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

absl::StatusOr<std::shared_ptr<const QuantizedLinears>>
QuantizedLinears::Create(const std::vector<QuantizedLinearSource>& layers,
                         std::shared_ptr<const LinearHook> fallback) {
  return CallTorch("quantizing linear layers to int8", [&] {
    // The prepack op dispatches on the global engine: select fbgemm once.
    static const bool engine_selected = [] {
      at::globalContext().setQEngine(at::QEngine::FBGEMM);
      return true;
    }();
    (void)engine_selected;
    std::shared_ptr<QuantizedLinears> result(new QuantizedLinears());
    result->fallback_ = std::move(fallback);
    for (const QuantizedLinearSource& layer : layers) {
      auto packed = std::make_shared<Packed>();
      packed->params = Prepack(layer.weight, layer.bias);
      // int8 weights, one double scale and one int64 zero point per row.
      result->bytes_ += layer.weight.numel() + layer.weight.size(0) * 16 +
                        (layer.bias.defined() ? layer.bias.numel() * 4 : 0);
      result->packed_[layer.id] = std::move(packed);
    }
    return std::shared_ptr<const QuantizedLinears>(std::move(result));
  });
}

at::Tensor QuantizedLinears::Apply(const LinearId& id, const at::Tensor& x,
                                   const at::Tensor& weight,
                                   const at::Tensor& bias) const {
  auto it = packed_.find(id);
  if (it == packed_.end()) {
    return fallback_ != nullptr ? fallback_->Apply(id, x, weight, bias)
                                : at::linear(x, weight, bias);
  }
  return it->second->params->apply_dynamic(x.contiguous(), kReduceRange);
}

absl::StatusOr<std::shared_ptr<const QuantizedLinears>> QuantizeEncoderLinears(
    const Encoder& encoder) {
  DYLORA_RETURN_IF_ERROR(CheckInt8Supported(encoder.device(), encoder.dtype()));
  std::vector<QuantizedLinearSource> layers;
  for (const LinearId& id : encoder.LinearIds(
           {std::begin(kAllLinearKinds), std::end(kAllLinearKinds)})) {
    DYLORA_ASSIGN_OR_RETURN(at::Tensor weight, encoder.LinearWeight(id));
    DYLORA_ASSIGN_OR_RETURN(at::Tensor bias, encoder.LinearBias(id));
    layers.push_back({id, weight, bias});
  }
  return QuantizedLinears::Create(layers);
}

}  // namespace dylora
