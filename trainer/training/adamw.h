// AdamW (Loshchilov & Hutter) with decoupled weight decay, computing what
// torch.optim.AdamW computes (bias-corrected moments, eps outside the square
// root), over "slots": a whole tensor, or one row/column of it.
//
// Why slots: DyLoRA's frozen mode trains only row b of Wdw and column b of
// Wup at a step of rank b. With a tensor-wide optimizer, momentum and weight
// decay would still move the other rows. Here each rank's row/column is its
// own slot with its own moments and step count, and a step updates only the
// active slots, so untouched ranks stay bit-identical.
//
// The whole state is named tensors, checkpointed in safetensors and restored
// bit for bit. Not thread-safe: one optimizer per training loop.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace dylora {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct ParamSlot {
  at::Tensor tensor;  // the parameter (a leaf that receives .grad())
  int64_t dim = -1;   // -1: the whole tensor; else tensor.select(dim, index)
  int64_t index = 0;
  double weight_decay = 0.0;
  // This slot's learning rate relative to the step's (e.g. a task head
  // trained faster than the adapter); the schedule applies to both.
  double lr_scale = 1.0;

  at::Tensor Param() const;
  at::Tensor Grad() const;  // undefined when the tensor has no gradient
};

class AdamW {
 public:
  explicit AdamW(std::vector<ParamSlot> slots, AdamWOptions options = {});

  // One update at learning rate `lr` times each slot's lr_scale times
  // `step_scales[i]` (this step's multiplier; all 1 when empty) of the slots
  // that have a gradient. A slot whose step scale is 0 is skipped whole: its
  // moments and step count do not move either.
  void Step(double lr, const std::vector<double>& step_scales = {});
  // Drops every gradient (set to none).
  void ZeroGrad();

  const std::vector<ParamSlot>& slots() const { return slots_; }
  // The distinct parameter tensors, in first-seen slot order.
  std::vector<at::Tensor> Parameters() const;

  // "m.<i>", "v.<i>" per slot and "steps" (int64 [slots]).
  std::vector<std::pair<std::string, at::Tensor>> StateTensors() const;
  // Checks names, count and shapes before changing anything.
  absl::Status RestoreState(
      const std::vector<std::pair<std::string, at::Tensor>>& state);

 private:
  std::vector<ParamSlot> slots_;
  AdamWOptions options_;
  std::vector<at::Tensor> exp_avg_;
  std::vector<at::Tensor> exp_avg_sq_;
  std::vector<int64_t> steps_;
};

// Rescales all gradients so their global L2 norm is at most max_norm (as
// torch.nn.utils.clip_grad_norm_; max_norm <= 0 disables). Returns the norm
// before clipping.
double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm);

// Linear warm-up from 0 over `warmup_steps`, then linear decay to 0 at
// `total_steps` (transformers' get_linear_schedule_with_warmup). `step` is the
// number of optimizer steps already taken.
double LinearWarmupDecay(double base_lr, int64_t step, int64_t warmup_steps,
                         int64_t total_steps);

}  // namespace dylora
