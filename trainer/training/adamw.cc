#include "trainer/training/adamw.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dylora {

at::Tensor ParamSlot::Param() const {
  return dim < 0 ? tensor : tensor.select(dim, index);
}

at::Tensor ParamSlot::Grad() const {
  const at::Tensor& grad = tensor.grad();
  if (!grad.defined()) return grad;
  return dim < 0 ? grad : grad.select(dim, index);
}

AdamW::AdamW(std::vector<ParamSlot> slots, AdamWOptions options)
    : slots_(std::move(slots)), options_(options), steps_(slots_.size(), 0) {
  at::NoGradGuard no_grad;
  for (const ParamSlot& slot : slots_) {
    at::Tensor param = slot.Param();
    exp_avg_.push_back(at::zeros_like(param, at::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(at::zeros_like(param, at::MemoryFormat::Contiguous));
  }
}

void AdamW::Step(double lr, const std::vector<double>& step_scales) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const double step_scale = step_scales.empty() ? 1.0 : step_scales[i];
    if (step_scale == 0) continue;
    const ParamSlot& slot = slots_[i];
    const double slot_lr = lr * slot.lr_scale * step_scale;
    at::Tensor grad = slot.Grad();
    if (!grad.defined()) continue;
    at::Tensor param = slot.Param();  // a view: updates land in the tensor
    const int64_t step = ++steps_[i];
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, step);
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, step);
    // The order of operations of torch.optim.AdamW's single-tensor path.
    param.mul_(1.0 - slot_lr * slot.weight_decay);
    exp_avg_[i].lerp_(grad, 1.0 - options_.beta1);
    exp_avg_sq_[i]
        .mul_(options_.beta2)
        .addcmul_(grad, grad, 1.0 - options_.beta2);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bias_correction2))
                           .add_(options_.eps);
    param.addcdiv_(exp_avg_[i], denom, -slot_lr / bias_correction1);
  }
}

void AdamW::ZeroGrad() {
  for (const ParamSlot& slot : slots_) {
    // Setting to none (not zero) also lets Step skip what took no part.
    if (slot.tensor.grad().defined()) slot.tensor.mutable_grad().reset();
  }
}

std::vector<at::Tensor> AdamW::Parameters() const {
  std::vector<at::Tensor> params;
  for (const ParamSlot& slot : slots_) {
    const bool seen = std::any_of(
        params.begin(), params.end(),
        [&](const at::Tensor& p) { return p.is_same(slot.tensor); });
    if (!seen) params.push_back(slot.tensor);
  }
  return params;
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::StateTensors() const {
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (size_t i = 0; i < slots_.size(); ++i) {
    state.emplace_back(absl::StrCat("m.", i), exp_avg_[i]);
    state.emplace_back(absl::StrCat("v.", i), exp_avg_sq_[i]);
  }
  state.emplace_back("steps", at::tensor(steps_, at::kLong));
  return state;
}

absl::Status AdamW::RestoreState(
    const std::vector<std::pair<std::string, at::Tensor>>& state) {
  const size_t expected = 2 * slots_.size() + 1;
  if (state.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer state has ", state.size(), " tensors, expected ", expected,
        " (the checkpoint belongs to another configuration)"));
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    for (int which = 0; which < 2; ++which) {
      const auto& [name, tensor] = state[2 * i + which];
      const std::string want = absl::StrCat(which == 0 ? "m." : "v.", i);
      if (name != want || !tensor.sizes().equals(exp_avg_[i].sizes())) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer state tensor '", name,
                         "' does not fit slot ", i, " (expected '", want,
                         "' with ", exp_avg_[i].numel(), " elements)"));
      }
    }
  }
  const at::Tensor& steps = state.back().second;
  if (state.back().first != "steps" || steps.dim() != 1 ||
      steps.size(0) != static_cast<int64_t>(slots_.size()) ||
      steps.scalar_type() != at::kLong) {
    return absl::InvalidArgumentError(
        "optimizer state lacks a valid 'steps' tensor");
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) {
    exp_avg_[i].copy_(state[2 * i].second);
    exp_avg_sq_[i].copy_(state[2 * i + 1].second);
    steps_[i] = steps[i].item<int64_t>();
  }
  return absl::OkStatus();
}

double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  double total_sq = 0.0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) {
      total_sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
    }
  }
  const double norm = std::sqrt(total_sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const at::Tensor& p : params) {
      if (p.grad().defined()) p.mutable_grad().mul_(scale);
    }
  }
  return norm;
}

double LinearWarmupDecay(double base_lr, int64_t step, int64_t warmup_steps,
                         int64_t total_steps) {
  if (step < warmup_steps) {
    return base_lr * static_cast<double>(step) /
           static_cast<double>(std::max<int64_t>(1, warmup_steps));
  }
  const double remaining =
      static_cast<double>(total_steps - step) /
      static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  return base_lr * std::max(0.0, remaining);
}

}  // namespace dylora
