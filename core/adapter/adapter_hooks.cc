#include "core/adapter/adapter_hooks.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

int64_t Key(const LinearId& id) {
  return id.layer * 8 + static_cast<int64_t>(id.kind);
}

// The factors in x's device and dtype (no copy when they already match).
std::pair<at::Tensor, at::Tensor> Matching(const LoraFactors& f,
                                           const at::Tensor& x) {
  if (f.down.device() == x.device() &&
      f.down.scalar_type() == x.scalar_type()) {
    return {f.down, f.up};
  }
  return {f.down.to(x.device(), x.scalar_type()),
          f.up.to(x.device(), x.scalar_type())};
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdapterHook>> AdapterHook::Create(
    const DyLoraAdapter& adapter, RankSpec spec,
    std::shared_ptr<const LinearHook> base) {
  const AdapterConfig& c = adapter.config();
  int64_t width = spec.rank;
  if (spec.per_row()) {
    DYLORA_RETURN_IF_ERROR(ValidateRowRanks(spec.row_ranks, c.r_min, c.r_max));
    width = spec.row_ranks.numel() == 0 ? c.r_min
                                        : spec.row_ranks.max().item<int64_t>();
  } else {
    DYLORA_RETURN_IF_ERROR(adapter.ValidateRank(spec.rank));
  }
  return CreateUnchecked(adapter, std::move(spec), width, std::move(base));
}

absl::StatusOr<std::unique_ptr<AdapterHook>> AdapterHook::CreateUnchecked(
    const DyLoraAdapter& adapter, RankSpec spec, int64_t max_rank,
    std::shared_ptr<const LinearHook> base) {
  return CallTorch("adapter hook", [&] {
    return std::unique_ptr<AdapterHook>(
        new AdapterHook(adapter, std::move(spec), max_rank, std::move(base)));
  });
}

AdapterHook::AdapterHook(const DyLoraAdapter& adapter, RankSpec spec,
                         int64_t width, std::shared_ptr<const LinearHook> base)
    : adapter_(adapter),
      spec_(std::move(spec)),
      width_(width),
      base_(std::move(base)) {
  if (spec_.per_row() && !adapter_.factors().empty()) {
    const at::Tensor& down = adapter_.factors().front().second.down;
    column_weights_ = UncheckedRankColumnWeights(
        spec_.row_ranks, width_, adapter_.config().alpha, down.options());
  }
}

at::Tensor AdapterHook::Apply(const LinearId& id, const at::Tensor& x,
                              const at::Tensor& weight,
                              const at::Tensor& bias) const {
  at::Tensor y = base_ != nullptr ? base_->Apply(id, x, weight, bias)
                                  : at::linear(x, weight, bias);
  const LoraFactors* f = adapter_.Find(id);
  if (f == nullptr) return y;
  if (x.dim() == 2) {
    AddLowRank(*f, y, x);
    return y;
  }
  auto [down, up] = Matching(*f, x);
  const double alpha = adapter_.config().alpha;
  if (!spec_.per_row()) {
    return y + UncheckedLowRankDelta(x, down, up, alpha, spec_.rank);
  }
  return y + UncheckedLowRankDeltaPerRow(x, down, up, alpha, spec_.row_ranks,
                                         width_);
}

void AdapterHook::AddLowRank(const LoraFactors& factors, at::Tensor& y,
                             const at::Tensor& x) const {
  auto [down, up] = Matching(factors, x);
  at::Tensor weights = column_weights_;
  if (weights.defined() && weights.scalar_type() != x.scalar_type()) {
    weights = weights.to(x.scalar_type());
  }
  UncheckedAddLowRank(y, x, down, up, adapter_.config().alpha,
                      spec_.per_row() ? width_ : spec_.rank, weights);
}

std::optional<std::array<at::Tensor, 3>> AdapterHook::ApplyQueryKeyValue(
    int64_t layer, const at::Tensor& x) const {
  if (base_ == nullptr || x.dim() != 2) return std::nullopt;
  std::optional<std::array<at::Tensor, 3>> qkv =
      base_->ApplyQueryKeyValue(layer, x);
  if (!qkv) return std::nullopt;
  constexpr LinearKind kKinds[] = {LinearKind::kQuery, LinearKind::kKey,
                                   LinearKind::kValue};
  // In place on the base's views of its one [tokens, 3 * out] product
  // (BLAS writes a column block with its row stride).
  for (size_t j = 0; j < 3; ++j) {
    if (const LoraFactors* f = adapter_.Find({layer, kKinds[j]})) {
      AddLowRank(*f, (*qkv)[j], x);
    }
  }
  return qkv;
}

absl::StatusOr<std::unique_ptr<TrainingHook>> TrainingHook::Create(
    const DyLoraAdapter& adapter, int64_t rank,
    std::optional<UpdateMode> mode) {
  DYLORA_RETURN_IF_ERROR(adapter.ValidateRank(rank));
  return std::unique_ptr<TrainingHook>(new TrainingHook(
      adapter, rank, mode.value_or(adapter.config().update_mode)));
}

at::Tensor TrainingHook::Apply(const LinearId& id, const at::Tensor& x,
                               const at::Tensor& weight,
                               const at::Tensor& bias) const {
  at::Tensor y = at::linear(x, weight, bias);
  const LoraFactors* f = adapter_.Find(id);
  if (f == nullptr) return y;
  auto [down, up] = UncheckedTrainingFactors(f->down, f->up, rank_, mode_);
  if (down.device() != x.device() || down.scalar_type() != x.scalar_type()) {
    down = down.to(x.device(), x.scalar_type());
    up = up.to(x.device(), x.scalar_type());
  }
  return y + UncheckedLowRankDelta(x, down, up, adapter_.config().alpha, rank_);
}

absl::StatusOr<std::vector<std::pair<LinearId, at::Tensor>>> MergedWeights(
    const DyLoraAdapter& adapter, const Encoder& encoder, int64_t rank) {
  DYLORA_RETURN_IF_ERROR(adapter.ValidateAgainst(encoder));
  DYLORA_RETURN_IF_ERROR(adapter.ValidateRank(rank));
  std::vector<std::pair<LinearId, at::Tensor>> merged;
  for (const auto& [id, f] : adapter.factors()) {
    DYLORA_ASSIGN_OR_RETURN(at::Tensor w, encoder.LinearWeight(id));
    DYLORA_ASSIGN_OR_RETURN(
        at::Tensor m, CallTorch(absl::StrCat("merge ", id.ModulePath()), [&] {
          at::NoGradGuard no_grad;
          // Merge in float32 at least, then cast to the backbone's dtype.
          const at::ScalarType compute =
              w.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
          at::Tensor down = f.down.detach().to(w.device(), compute);
          at::Tensor up = f.up.detach().to(w.device(), compute);
          return UncheckedMergedWeight(w.to(compute), down, up,
                                       adapter.config().alpha, rank)
              .to(w.scalar_type())
              .contiguous();
        }));
    merged.push_back({id, std::move(m)});
  }
  return merged;
}

MergedWeightsHook::MergedWeightsHook(
    std::vector<std::pair<LinearId, at::Tensor>> merged) {
  for (auto& [id, w] : merged) merged_[Key(id)] = std::move(w);
}

at::Tensor MergedWeightsHook::Apply(const LinearId& id, const at::Tensor& x,
                                    const at::Tensor& weight,
                                    const at::Tensor& bias) const {
  auto it = merged_.find(Key(id));
  return at::linear(x, it == merged_.end() ? weight : it->second, bias);
}

}  // namespace dylora
