#include "core/model/pooling.h"

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

constexpr std::pair<PoolingMode, absl::string_view> kNames[] = {
    {PoolingMode::kCls, "cls"},
    {PoolingMode::kMean, "mean"},
    {PoolingMode::kMax, "max"},
    {PoolingMode::kMeanSqrtLen, "mean_sqrt_len"},
};

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status CheckHidden(const at::Tensor& h, absl::string_view what) {
  if (!h.defined() || h.dim() != 3 || h.size(1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": last_hidden_state must be [batch, seq > 0, hidden], got ",
        h.defined() ? ShapeString(h.sizes()) : std::string("undefined")));
  }
  return absl::OkStatus();
}

absl::Status CheckMask(const at::Tensor& h, const at::Tensor& mask,
                       absl::string_view what) {
  if (!mask.defined() || mask.sizes() != h.sizes().slice(0, 2)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": attention_mask must be [batch, seq] = ",
        ShapeString(h.sizes().slice(0, 2)), ", got ",
        mask.defined() ? ShapeString(mask.sizes()) : std::string("undefined")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view PoolingModeName(PoolingMode mode) {
  for (const auto& [m, name] : kNames) {
    if (m == mode) return name;
  }
  return "unknown";
}

absl::StatusOr<PoolingMode> ParsePoolingMode(absl::string_view name) {
  for (const auto& [mode, n] : kNames) {
    if (n == name) return mode;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown pooling mode \"", name, "\" (cls, mean, max or mean_sqrt_len)"));
}

absl::StatusOr<at::Tensor> Pool(PoolingMode mode, const at::Tensor& h,
                                const at::Tensor& attention_mask) {
  const std::string what = absl::StrCat(PoolingModeName(mode), " pooling");
  if (absl::Status s = CheckHidden(h, what); !s.ok()) return s;
  if (mode == PoolingMode::kCls) {
    return CallTorch(what, [&] { return h.select(1, 0); });
  }
  if (absl::Status s = CheckMask(h, attention_mask, what); !s.ok()) return s;
  return CallTorch(what, [&] {
    const at::Tensor m =
        attention_mask.to(h.device(), h.scalar_type()).unsqueeze(-1);
    if (mode == PoolingMode::kMax) {
      return h.masked_fill(m.eq(0), -1e9).amax(1);
    }
    const at::Tensor sum = h.mul(m).sum(1);
    const at::Tensor count = m.sum(1).clamp_min(1e-9);
    return mode == PoolingMode::kMean ? sum.div(count) : sum.div(count.sqrt());
  });
}

absl::StatusOr<at::Tensor> ClsPool(const at::Tensor& last_hidden_state) {
  return Pool(PoolingMode::kCls, last_hidden_state, at::Tensor());
}

absl::StatusOr<at::Tensor> MeanPool(const at::Tensor& last_hidden_state,
                                    const at::Tensor& attention_mask) {
  return Pool(PoolingMode::kMean, last_hidden_state, attention_mask);
}

}  // namespace dylora
