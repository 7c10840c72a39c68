#include "core/adapter/dylora_linear.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

std::string ShapeString(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

}  // namespace

absl::string_view UpdateModeName(UpdateMode mode) {
  return mode == UpdateMode::kFrozen ? "frozen" : "full";
}

absl::StatusOr<UpdateMode> ParseUpdateMode(absl::string_view name) {
  if (name == "frozen") return UpdateMode::kFrozen;
  if (name == "full") return UpdateMode::kFull;
  return absl::InvalidArgumentError(absl::StrCat(
      "update mode \"", name, "\" is neither \"frozen\" nor \"full\""));
}

absl::Status ValidateRank(int64_t rank, int64_t r_min, int64_t r_max) {
  if (rank < r_min || rank > r_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside this adapter's range [", r_min,
                     ", ", r_max, "]"));
  }
  return absl::OkStatus();
}

absl::Status ValidateFactors(const at::Tensor& down, const at::Tensor& up,
                             int64_t out_features, int64_t in_features,
                             absl::string_view what) {
  if (!down.defined() || !up.defined()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": lora_A/lora_B tensor missing"));
  }
  if (!at::isFloatingType(down.scalar_type()) ||
      down.scalar_type() != up.scalar_type()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": lora_A/lora_B must share one floating dtype"));
  }
  if (down.dim() != 2 || down.size(1) != in_features || down.size(0) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": lora_A has shape ", ShapeString(down),
                     ", expected [r, ", in_features, "]"));
  }
  const int64_t r = down.size(0);
  if (up.dim() != 2 || up.size(0) != out_features || up.size(1) != r) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": lora_B has shape ", ShapeString(up),
                     ", expected [", out_features, ", ", r, "]"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRowRanks(const at::Tensor& ranks, int64_t r_min,
                              int64_t r_max) {
  if (!ranks.defined() || ranks.dim() != 1 ||
      ranks.scalar_type() != at::kLong) {
    return absl::InvalidArgumentError(
        "per-row ranks must be a 1-D int64 tensor [batch]");
  }
  if (ranks.numel() == 0) return absl::OkStatus();
  at::Tensor cpu = ranks.cpu();
  const int64_t lo = cpu.min().item<int64_t>();
  const int64_t hi = cpu.max().item<int64_t>();
  DYLORA_RETURN_IF_ERROR(ValidateRank(lo, r_min, r_max));
  return ValidateRank(hi, r_min, r_max);
}

at::Tensor UncheckedRankColumnWeights(const at::Tensor& ranks, int64_t width,
                                      double alpha,
                                      const at::TensorOptions& options) {
  at::Tensor r = ranks.to(options.device()).to(at::kLong);
  at::Tensor columns = at::arange(width, r.options());
  at::Tensor mask = columns.unsqueeze(0) < r.unsqueeze(1);  // [B, width]
  at::Tensor scale = alpha / r.to(at::kDouble);             // [B]
  return (mask.to(at::kDouble) * scale.unsqueeze(1)).to(options.dtype());
}

void UncheckedAddLowRank(at::Tensor& y, const at::Tensor& x,
                         const at::Tensor& down, const at::Tensor& up,
                         double alpha, int64_t width,
                         const at::Tensor& column_weights) {
  at::Tensor h = at::mm(x, down.narrow(0, 0, width).t());  // [T, width]
  double scale = alpha / static_cast<double>(width);
  if (column_weights.defined()) {
    h.mul_(column_weights);
    scale = 1.0;
  }
  y.addmm_(h, up.narrow(1, 0, width).t(), /*beta=*/1, /*alpha=*/scale);
}

at::Tensor UncheckedLowRankDelta(const at::Tensor& x, const at::Tensor& down,
                                 const at::Tensor& up, double alpha,
                                 int64_t rank) {
  at::Tensor h = at::matmul(x, down.narrow(0, 0, rank).t());
  h = h * (alpha / static_cast<double>(rank));
  return at::matmul(h, up.narrow(1, 0, rank).t());
}

at::Tensor UncheckedLowRankDeltaPerRow(const at::Tensor& x,
                                       const at::Tensor& down,
                                       const at::Tensor& up, double alpha,
                                       const at::Tensor& ranks, int64_t width) {
  TORCH_CHECK(x.dim() >= 2 && ranks.dim() == 1 && x.size(0) == ranks.size(0),
              "per-row ranks [", ranks.numel(),
              "] do not match the batch of x ", x.sizes());
  if (width < 1) width = ranks.numel() == 0 ? 1 : ranks.max().item<int64_t>();
  at::Tensor h = at::matmul(x, down.narrow(0, 0, width).t());  // [B,...,w]
  at::Tensor w = UncheckedRankColumnWeights(ranks, width, alpha, h.options());
  std::vector<int64_t> view(h.dim(), 1);
  view.front() = h.size(0);
  view.back() = width;
  h = h * w.view(view);
  return at::matmul(h, up.narrow(1, 0, width).t());
}

std::pair<at::Tensor, at::Tensor> UncheckedTrainingFactors(
    const at::Tensor& down, const at::Tensor& up, int64_t rank,
    UpdateMode mode) {
  if (mode == UpdateMode::kFull || rank == 1) {
    // rank 1 in frozen mode: the only row is the live one.
    return {down.narrow(0, 0, rank), up.narrow(1, 0, rank)};
  }
  at::Tensor d = at::cat(
      {down.narrow(0, 0, rank - 1).detach(), down.narrow(0, rank - 1, 1)}, 0);
  at::Tensor u = at::cat(
      {up.narrow(1, 0, rank - 1).detach(), up.narrow(1, rank - 1, 1)}, 1);
  return {d, u};
}

at::Tensor UncheckedForward(const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& down,
                            const at::Tensor& up, double alpha, int64_t rank) {
  return at::linear(x, weight, bias) +
         UncheckedLowRankDelta(x, down, up, alpha, rank);
}

at::Tensor UncheckedMergedWeight(const at::Tensor& weight,
                                 const at::Tensor& down, const at::Tensor& up,
                                 double alpha, int64_t rank) {
  at::Tensor product =
      at::matmul(up.narrow(1, 0, rank), down.narrow(0, 0, rank));
  return weight +
         product.to(weight.scalar_type()) * (alpha / static_cast<double>(rank));
}

namespace {

absl::Status ValidateLinear(const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& down, const at::Tensor& up,
                            double alpha) {
  if (!weight.defined() || weight.dim() != 2) {
    return absl::InvalidArgumentError("linear weight must be [out, in]");
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear bias has shape ", ShapeString(bias),
                     ", expected [", weight.size(0), "]"));
  }
  if (!(alpha > 0) || !std::isfinite(alpha)) {
    return absl::InvalidArgumentError(
        absl::StrCat("alpha must be positive, got ", alpha));
  }
  return ValidateFactors(down, up, weight.size(0), weight.size(1), "adapter");
}

absl::Status ValidateInput(const at::Tensor& x, const at::Tensor& weight) {
  if (!x.defined() || x.dim() < 1 || x.size(-1) != weight.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input has shape ", x.defined() ? ShapeString(x) : "<undefined>",
        ", expected [..., ", weight.size(1), "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<at::Tensor> DyLoraForward(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    const at::Tensor& down, const at::Tensor& up, double alpha, int64_t rank) {
  DYLORA_RETURN_IF_ERROR(ValidateLinear(weight, bias, down, up, alpha));
  DYLORA_RETURN_IF_ERROR(ValidateInput(x, weight));
  DYLORA_RETURN_IF_ERROR(ValidateRank(rank, 1, down.size(0)));
  return CallTorch("DyLoRA forward", [&] {
    return UncheckedForward(x, weight, bias, down, up, alpha, rank);
  });
}

absl::StatusOr<at::Tensor> DyLoraForwardPerRow(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    const at::Tensor& down, const at::Tensor& up, double alpha,
    const at::Tensor& ranks) {
  DYLORA_RETURN_IF_ERROR(ValidateLinear(weight, bias, down, up, alpha));
  DYLORA_RETURN_IF_ERROR(ValidateInput(x, weight));
  DYLORA_RETURN_IF_ERROR(ValidateRowRanks(ranks, 1, down.size(0)));
  if (x.dim() < 2 || x.size(0) != ranks.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("per-row ranks have ", ranks.size(0),
                     " entries but the input batch is ", ShapeString(x)));
  }
  return CallTorch("DyLoRA per-row forward", [&] {
    return at::linear(x, weight, bias) +
           UncheckedLowRankDeltaPerRow(x, down, up, alpha, ranks);
  });
}

absl::StatusOr<at::Tensor> DyLoraMergedWeight(const at::Tensor& weight,
                                              const at::Tensor& down,
                                              const at::Tensor& up,
                                              double alpha, int64_t rank) {
  DYLORA_RETURN_IF_ERROR(ValidateLinear(weight, at::Tensor(), down, up, alpha));
  DYLORA_RETURN_IF_ERROR(ValidateRank(rank, 1, down.size(0)));
  return CallTorch("DyLoRA merge", [&] {
    return UncheckedMergedWeight(weight, down, up, alpha, rank);
  });
}

std::pair<at::Tensor, at::Tensor> InitFactors(int64_t r_max,
                                              int64_t in_features,
                                              int64_t out_features,
                                              at::Generator& generator) {
  // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain = sqrt(2 / (1 + 5)),
  // bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  at::Tensor down = at::empty({r_max, in_features}, at::kFloat);
  down.uniform_(-bound, bound, generator);
  at::Tensor up = at::zeros({out_features, r_max}, at::kFloat);
  return {down, up};
}

}  // namespace dylora
