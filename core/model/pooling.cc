#include "core/model/pooling.h"

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

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

}  // namespace

absl::StatusOr<at::Tensor> ClsPool(const at::Tensor& last_hidden_state) {
  if (absl::Status s = CheckHidden(last_hidden_state, "CLS pooling"); !s.ok()) {
    return s;
  }
  return CallTorch("CLS pooling",
                   [&] { return last_hidden_state.select(1, 0); });
}

absl::StatusOr<at::Tensor> MeanPool(const at::Tensor& last_hidden_state,
                                    const at::Tensor& attention_mask) {
  if (absl::Status s = CheckHidden(last_hidden_state, "mean pooling");
      !s.ok()) {
    return s;
  }
  if (!attention_mask.defined() ||
      attention_mask.sizes() != last_hidden_state.sizes().slice(0, 2)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mean pooling: attention_mask must be [batch, seq] = ",
        ShapeString(last_hidden_state.sizes().slice(0, 2)), ", got ",
        attention_mask.defined() ? ShapeString(attention_mask.sizes())
                                 : std::string("undefined")));
  }
  return CallTorch("mean pooling", [&] {
    const at::Tensor m =
        attention_mask
            .to(last_hidden_state.device(), last_hidden_state.scalar_type())
            .unsqueeze(-1);
    return last_hidden_state.mul(m).sum(1).div(m.sum(1).clamp_min(1e-9));
  });
}

}  // namespace dylora
