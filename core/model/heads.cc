#include "core/model/heads.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status CheckSizes(int64_t hidden_size, int64_t num_labels,
                        const EncoderLoadOptions& options) {
  if (hidden_size <= 0 || num_labels <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("classification head: hidden_size (", hidden_size,
                     ") and num_labels (", num_labels, ") must be positive"));
  }
  if (!at::isFloatingType(options.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("classification head: dtype must be floating, got ",
                     c10::toString(options.dtype)));
  }
  return absl::OkStatus();
}

// `t`'s tensor `i` in Layout order.
const at::Tensor& At(const std::vector<std::pair<std::string, at::Tensor>>& t,
                     size_t i) {
  return t[i].second;
}

}  // namespace

namespace {

constexpr std::pair<HeadKind, absl::string_view> kHeadNames[] = {
    {HeadKind::kBertPooled, "pooler"},
    {HeadKind::kRobertaClassification, "roberta"},
    {HeadKind::kMeanPooled, "mean"},
    {HeadKind::kClsPooled, "cls"},
    {HeadKind::kMaxPooled, "max"},
    {HeadKind::kMeanSqrtLenPooled, "mean_sqrt_len"},
};

// The pooling a kind reads the last hidden state with; nullopt for the two
// Hugging Face heads, which read the pooler / token 0 themselves.
std::optional<PoolingMode> HeadPooling(HeadKind kind) {
  switch (kind) {
    case HeadKind::kMeanPooled:
      return PoolingMode::kMean;
    case HeadKind::kClsPooled:
      return PoolingMode::kCls;
    case HeadKind::kMaxPooled:
      return PoolingMode::kMax;
    case HeadKind::kMeanSqrtLenPooled:
      return PoolingMode::kMeanSqrtLen;
    case HeadKind::kBertPooled:
    case HeadKind::kRobertaClassification:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

HeadKind DefaultHeadKind(EncoderFamily family) {
  return family == EncoderFamily::kRoberta ? HeadKind::kRobertaClassification
                                           : HeadKind::kBertPooled;
}

HeadKind PooledHeadKind(PoolingMode pooling) {
  switch (pooling) {
    case PoolingMode::kMean:
      return HeadKind::kMeanPooled;
    case PoolingMode::kCls:
      return HeadKind::kClsPooled;
    case PoolingMode::kMax:
      return HeadKind::kMaxPooled;
    case PoolingMode::kMeanSqrtLen:
      return HeadKind::kMeanSqrtLenPooled;
  }
  return HeadKind::kMeanPooled;
}

absl::string_view HeadKindName(HeadKind kind) {
  for (const auto& [k, name] : kHeadNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

absl::StatusOr<HeadKind> ParseHeadKind(absl::string_view name) {
  for (const auto& [kind, n] : kHeadNames) {
    if (n == name) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown head \"", name,
                   "\" (pooler, roberta, mean, cls, max or mean_sqrt_len)"));
}

std::vector<std::pair<std::string, std::vector<int64_t>>>
ClassificationHead::Layout(HeadKind kind, int64_t hidden_size,
                           int64_t num_labels) {
  if (kind != HeadKind::kRobertaClassification) {
    return {{"classifier.weight", {num_labels, hidden_size}},
            {"classifier.bias", {num_labels}}};
  }
  return {{"classifier.dense.weight", {hidden_size, hidden_size}},
          {"classifier.dense.bias", {hidden_size}},
          {"classifier.out_proj.weight", {num_labels, hidden_size}},
          {"classifier.out_proj.bias", {num_labels}}};
}

absl::StatusOr<ClassificationHead> ClassificationHead::Create(
    HeadKind kind, int64_t hidden_size, int64_t num_labels, uint64_t seed,
    const EncoderLoadOptions& options, double init_std) {
  DYLORA_RETURN_IF_ERROR(CheckSizes(hidden_size, num_labels, options));
  if (!(init_std >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "classification head: init_std must be >= 0, got ", init_std));
  }
  c10::InferenceMode not_inference(/*enabled=*/false);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  DYLORA_RETURN_IF_ERROR(CallTorch("classification head init", [&] {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (auto& [name, shape] : Layout(kind, hidden_size, num_labels)) {
      at::Tensor t = at::zeros(shape, at::kFloat);
      if (shape.size() == 2) t.normal_(0.0, init_std, gen);  // weights
      tensors.emplace_back(name, t.to(options.device, options.dtype));
    }
  }));
  return ClassificationHead(kind, hidden_size, num_labels, std::move(tensors));
}

absl::StatusOr<ClassificationHead> ClassificationHead::FromTensors(
    HeadKind kind, int64_t hidden_size, int64_t num_labels,
    const std::map<std::string, at::Tensor>& tensors,
    const EncoderLoadOptions& options) {
  DYLORA_RETURN_IF_ERROR(CheckSizes(hidden_size, num_labels, options));
  const auto layout = Layout(kind, hidden_size, num_labels);
  std::vector<std::string> problems;
  for (const auto& [name, shape] : layout) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      problems.push_back(absl::StrCat("missing ", name, " (expected ",
                                      ShapeString(shape), ")"));
    } else if (!it->second.defined() ||
               it->second.sizes() != at::IntArrayRef(shape)) {
      problems.push_back(
          absl::StrCat(name, ": expected ", ShapeString(shape), ", found ",
                       it->second.defined() ? ShapeString(it->second.sizes())
                                            : "undefined"));
    } else if (!at::isFloatingType(it->second.scalar_type())) {
      problems.push_back(absl::StrCat(name,
                                      ": expected a floating dtype, found ",
                                      c10::toString(it->second.scalar_type())));
    }
  }
  for (const auto& [name, tensor] : tensors) {
    if (std::none_of(layout.begin(), layout.end(),
                     [&](const auto& entry) { return entry.first == name; })) {
      problems.push_back(absl::StrCat("unexpected ", name));
    }
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "classification head tensors do not match (", num_labels,
        " labels, hidden ", hidden_size, "): ", absl::StrJoin(problems, "; ")));
  }
  c10::InferenceMode not_inference(/*enabled=*/false);
  std::vector<std::pair<std::string, at::Tensor>> out;
  DYLORA_RETURN_IF_ERROR(CallTorch("classification head load", [&] {
    for (const auto& [name, shape] : layout) {
      out.emplace_back(name, tensors.at(name)
                                 .detach()
                                 .to(options.device, options.dtype,
                                     /*non_blocking=*/false, /*copy=*/true)
                                 .contiguous());
    }
  }));
  return ClassificationHead(kind, hidden_size, num_labels, std::move(out));
}

void ClassificationHead::SetRequiresGrad(bool requires_grad) {
  for (auto& [name, tensor] : tensors_) tensor.set_requires_grad(requires_grad);
}

absl::StatusOr<at::Tensor> ClassificationHead::Forward(
    const EncoderOutputs& outputs, Dropout* dropout) const {
  auto drop = [&](const at::Tensor& t) {
    return dropout == nullptr
               ? t
               : ApplyDropout(t, dropout->classifier, dropout->generator);
  };
  const at::Tensor& h = outputs.last_hidden_state;
  if (std::optional<PoolingMode> pooling = HeadPooling(kind_)) {
    if (!h.defined() || h.dim() != 3 || h.size(2) != hidden_size_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "classification head: last_hidden_state must be [batch, seq, ",
          hidden_size_, "], got ",
          h.defined() ? ShapeString(h.sizes()) : std::string("undefined")));
    }
    at::Tensor mask = outputs.attention_mask;
    if (!mask.defined() && *pooling != PoolingMode::kCls) {
      DYLORA_ASSIGN_OR_RETURN(mask, CallTorch("classification head", [&] {
                                return at::ones(h.sizes().slice(0, 2),
                                                h.options());
                              }));
    }
    DYLORA_ASSIGN_OR_RETURN(at::Tensor pooled, Pool(*pooling, h, mask));
    return CallTorch("classification head forward", [&] {
      return at::linear(drop(pooled), At(tensors_, 0), At(tensors_, 1));
    });
  }
  if (kind_ == HeadKind::kBertPooled) {
    const at::Tensor& pooled = outputs.pooler_output;
    if (!pooled.defined()) {
      return absl::FailedPreconditionError(
          "classification head classifier.weight reads the pooler output, but "
          "the encoder has no pooler (pooler.dense.* absent from the "
          "checkpoint)");
    }
    if (pooled.dim() != 2 || pooled.size(1) != hidden_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("classification head: pooler_output must be [batch, ",
                       hidden_size_, "], got ", ShapeString(pooled.sizes())));
    }
    return CallTorch("classification head forward", [&] {
      return at::linear(drop(pooled), At(tensors_, 0), At(tensors_, 1));
    });
  }
  if (!h.defined() || h.dim() != 3 || h.size(1) == 0 ||
      h.size(2) != hidden_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "classification head: last_hidden_state must be [batch, seq > 0, ",
        hidden_size_, "], got ",
        h.defined() ? ShapeString(h.sizes()) : std::string("undefined")));
  }
  return CallTorch("classification head forward", [&] {
    const at::Tensor x = at::tanh(
        at::linear(drop(h.select(1, 0)), At(tensors_, 0), At(tensors_, 1)));
    return at::linear(drop(x), At(tensors_, 2), At(tensors_, 3));
  });
}

}  // namespace dylora
