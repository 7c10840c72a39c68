#include "core/adapter/adapter.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

constexpr LinearKind kAllKinds[] = {
    LinearKind::kQuery,        LinearKind::kKey,
    LinearKind::kValue,        LinearKind::kAttentionOutput,
    LinearKind::kIntermediate, LinearKind::kOutput};

std::string Shape(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

}  // namespace

absl::StatusOr<LinearKind> ParseLinearKind(absl::string_view name) {
  for (LinearKind kind : kAllKinds) {
    if (LinearKindName(kind) == name) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown target module \"", name,
      "\" (expected query, key, value, attention.output, intermediate or "
      "output)"));
}

void RankMetrics::Recommend(double tol) {
  tolerance = tol;
  best_rank.reset();
  smallest_rank_within_tolerance.reset();
  if (values.empty()) return;
  auto better = [&](double a, double b) {
    return higher_is_better ? a > b : a < b;
  };
  std::vector<std::pair<int64_t, double>> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  double best = sorted.front().second;
  best_rank = sorted.front().first;
  for (const auto& [rank, value] : sorted) {
    if (better(value, best)) {
      best = value;
      best_rank = rank;
    }
  }
  for (const auto& [rank, value] : sorted) {
    const double gap = higher_is_better ? best - value : value - best;
    if (gap <= tol) {
      smallest_rank_within_tolerance = rank;
      break;
    }
  }
}

absl::StatusOr<std::unique_ptr<DyLoraAdapter>> DyLoraAdapter::FromParts(
    AdapterConfig config, std::vector<std::pair<LinearId, LoraFactors>> factors,
    NamedTensors head, RankMetrics metrics) {
  if (!(config.alpha > 0) || !std::isfinite(config.alpha)) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter alpha must be positive, got ", config.alpha));
  }
  if (config.r_min < 1 || config.r_max < config.r_min) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter rank range [", config.r_min, ", ", config.r_max,
                     "] is empty or below 1"));
  }
  if (factors.empty()) {
    return absl::InvalidArgumentError("adapter has no adapted layers");
  }
  std::unique_ptr<DyLoraAdapter> adapter(new DyLoraAdapter());
  for (size_t i = 0; i < factors.size(); ++i) {
    const auto& [id, f] = factors[i];
    const std::string what = id.ModulePath();
    if (!f.down.defined() || !f.up.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": lora_A/lora_B tensor missing"));
    }
    if (f.down.dim() != 2 || f.up.dim() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": lora_A ", Shape(f.down), " / lora_B ",
                       Shape(f.up), " must be matrices"));
    }
    DYLORA_RETURN_IF_ERROR(
        ValidateFactors(f.down, f.up, f.up.size(0), f.down.size(1), what));
    if (f.down.size(0) != config.r_max) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": lora_A has rank ", f.down.size(0),
                       " but the adapter's r_max is ", config.r_max));
    }
    if (!adapter->index_.emplace(Key(id), i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is adapted twice"));
    }
  }
  for (const auto& [name, t] : head) {
    if (name.empty() || !t.defined() || !at::isFloatingType(t.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "head tensor \"", name, "\" is undefined or not floating point"));
    }
  }
  adapter->config_ = std::move(config);
  adapter->factors_ = std::move(factors);
  adapter->head_ = std::move(head);
  adapter->metrics_ = std::move(metrics);
  return adapter;
}

absl::StatusOr<std::unique_ptr<DyLoraAdapter>> DyLoraAdapter::CreateFresh(
    const Encoder& encoder, AdapterConfig config, NamedTensors head,
    uint64_t seed) {
  if (config.target_kinds.empty()) {
    return absl::InvalidArgumentError(
        "adapter needs at least one target module");
  }
  if (config.r_min < 1 || config.r_max < config.r_min) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter rank range [", config.r_min, ", ", config.r_max,
                     "] is empty or below 1"));
  }
  config.base_model_fingerprint = encoder.fingerprint();
  config.family = encoder.config().family;
  std::vector<std::pair<LinearId, LoraFactors>> factors;
  DYLORA_RETURN_IF_ERROR(CallTorch("adapter init", [&] {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    for (const LinearId& id : encoder.LinearIds(config.target_kinds)) {
      auto [down, up] = InitFactors(config.r_max, encoder.InFeatures(id.kind),
                                    encoder.OutFeatures(id.kind), gen);
      factors.push_back({id, LoraFactors{down, up}});
    }
  }));
  DYLORA_ASSIGN_OR_RETURN(
      auto adapter,
      FromParts(std::move(config), std::move(factors), std::move(head)));
  DYLORA_RETURN_IF_ERROR(adapter->ValidateAgainst(encoder));
  adapter->SetRequiresGrad(true);
  return adapter;
}

absl::Status DyLoraAdapter::ValidateAgainst(const Encoder& encoder) const {
  if (config_.family != encoder.config().family) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adapter was made for a ",
        config_.family == EncoderFamily::kRoberta ? "RoBERTa" : "BERT",
        "-family backbone but the loaded backbone is ",
        encoder.config().model_type));
  }
  const std::string& mine = config_.base_model_fingerprint;
  const std::string& theirs = encoder.fingerprint();
  if (!mine.empty() && !theirs.empty() && mine != theirs) {
    return absl::FailedPreconditionError(
        absl::StrCat("adapter was trained on backbone fingerprint ", mine,
                     " but the loaded backbone has fingerprint ", theirs));
  }
  for (const auto& [id, f] : factors_) {
    auto weight = encoder.LinearWeight(id);
    if (!weight.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter targets ", id.ModulePath(),
          " which the backbone does not have: ", weight.status().message()));
    }
    DYLORA_RETURN_IF_ERROR(ValidateFactors(f.down, f.up, weight->size(0),
                                           weight->size(1), id.ModulePath()));
  }
  if (!head_.empty()) {
    DYLORA_RETURN_IF_ERROR(BuildHead(encoder).status());
  }
  const int64_t hidden = encoder.config().hidden_size;
  for (const auto& [name, t] : head_) {
    // Every head matrix reads the hidden state (BERT: classifier; RoBERTa:
    // classifier.dense and classifier.out_proj).
    if (t.dim() == 2 && t.size(1) != hidden) {
      return absl::InvalidArgumentError(
          absl::StrCat("head tensor ", name, " has shape ", Shape(t),
                       " but the backbone's hidden size is ", hidden));
    }
    if (t.dim() != 1 && t.dim() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("head tensor ", name,
                                                     " has shape ", Shape(t),
                                                     ", expected 1-D or 2-D"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DyLoraAdapter>> DyLoraAdapter::To(
    c10::Device device, c10::ScalarType dtype) const {
  std::vector<std::pair<LinearId, LoraFactors>> factors;
  NamedTensors head;
  DYLORA_RETURN_IF_ERROR(CallTorch("adapter copy", [&] {
    for (const auto& [id, f] : factors_) {
      factors.push_back({id, LoraFactors{f.down.detach().to(device, dtype),
                                         f.up.detach().to(device, dtype)}});
    }
    for (const auto& [name, t] : head_) {
      head.push_back({name, t.detach().to(device, dtype)});
    }
  }));
  return FromParts(config_, std::move(factors), std::move(head), metrics_);
}

const LoraFactors* DyLoraAdapter::Find(const LinearId& id) const {
  auto it = index_.find(Key(id));
  return it == index_.end() ? nullptr : &factors_[it->second].second;
}

const at::Tensor* DyLoraAdapter::FindHeadTensor(absl::string_view name) const {
  for (const auto& [n, t] : head_) {
    if (n == name) return &t;
  }
  return nullptr;
}

absl::Status DyLoraAdapter::ValidateRank(int64_t rank) const {
  return ::dylora::ValidateRank(rank, config_.r_min, config_.r_max);
}

absl::StatusOr<ClassificationHead> DyLoraAdapter::BuildHead(
    const Encoder& encoder) const {
  const HeadKind kind = config_.head_kind();
  const char* out_name = kind == HeadKind::kRobertaClassification
                             ? "classifier.out_proj.weight"
                             : "classifier.weight";
  const at::Tensor* out = FindHeadTensor(out_name);
  if (out == nullptr || out->dim() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter head has no 2-D ", out_name,
                     " for its head kind \"", HeadKindName(kind), "\""));
  }
  std::map<std::string, at::Tensor> tensors(head_.begin(), head_.end());
  EncoderLoadOptions options;
  options.device = encoder.device();
  options.dtype = encoder.dtype();
  auto head = ClassificationHead::FromTensors(
      kind, encoder.config().hidden_size, out->size(0), tensors, options);
  if (!head.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter head: ", head.status().message()));
  }
  return head;
}

std::vector<at::Tensor> DyLoraAdapter::TrainableParameters() const {
  std::vector<at::Tensor> params;
  for (const auto& [id, f] : factors_) {
    params.push_back(f.down);
    params.push_back(f.up);
  }
  for (const auto& [name, t] : head_) params.push_back(t);
  return params;
}

void DyLoraAdapter::SetRequiresGrad(bool requires_grad) {
  for (at::Tensor& t : TrainableParameters()) {
    if (t.is_leaf()) t.set_requires_grad(requires_grad);
  }
}

}  // namespace dylora
