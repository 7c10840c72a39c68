// Sequence classification / regression heads with Hugging Face's tensor
// names: BertForSequenceClassification, RobertaForSequenceClassification,
// and a linear layer on a pooled sentence embedding (the pooling a
// sentence-transformers checkpoint declares). Dropout only when the caller
// passes one (training).
//
// A head is trainable and belongs to an adapter (PEFT modules_to_save), not to
// the frozen backbone, so it is a small value object over named tensors.
// Copies share tensors (at::Tensor is a reference). Forward is const and
// thread-safe; changing requires_grad or updating the tensors in place is up
// to the single owner that trains it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/model_config.h"
#include "core/model/dropout.h"
#include "core/model/encoder.h"
#include "core/model/pooling.h"

namespace dylora {

enum class HeadKind {
  // classifier.{weight,bias} [num_labels, hidden] on the pooler output.
  kBertPooled,
  // classifier.dense (hidden -> hidden) + tanh + classifier.out_proj on token
  // 0 of the last hidden state.
  kRobertaClassification,
  // classifier.{weight,bias} on the last hidden state pooled over real
  // tokens (sentence-transformers' modes).
  kMeanPooled,
  kClsPooled,
  kMaxPooled,
  kMeanSqrtLenPooled,
};

// The head Hugging Face uses for the family.
HeadKind DefaultHeadKind(EncoderFamily family);
// The head reading `pooling` (a sentence-transformers declaration).
HeadKind PooledHeadKind(PoolingMode pooling);
// "pooler", "roberta", "mean", "cls", "max", "mean_sqrt_len": stored in
// adapter files, so these names are a file format.
absl::string_view HeadKindName(HeadKind kind);
absl::StatusOr<HeadKind> ParseHeadKind(absl::string_view name);

class ClassificationHead {
 public:
  // Initialised as Hugging Face does: weights ~ N(0, init_std^2) drawn from a
  // CPU generator seeded with `seed` (the same seed gives the same head),
  // biases zero. num_labels 1 is regression. requires_grad is false until
  // SetRequiresGrad(true).
  static absl::StatusOr<ClassificationHead> Create(
      HeadKind kind, int64_t hidden_size, int64_t num_labels, uint64_t seed,
      const EncoderLoadOptions& options = {}, double init_std = 0.02);
  // From tensors named exactly as named_tensors() lists them (a caller strips
  // any "base_model.model." style prefix first). Missing, unexpected or
  // mis-shaped tensors are one INVALID_ARGUMENT listing them. The tensors
  // are copied to the options' device and dtype.
  static absl::StatusOr<ClassificationHead> FromTensors(
      HeadKind kind, int64_t hidden_size, int64_t num_labels,
      const std::map<std::string, at::Tensor>& tensors,
      const EncoderLoadOptions& options = {});

  // The tensor names and shapes this head has.
  static std::vector<std::pair<std::string, std::vector<int64_t>>> Layout(
      HeadKind kind, int64_t hidden_size, int64_t num_labels);

  HeadKind kind() const { return kind_; }
  int64_t hidden_size() const { return hidden_size_; }
  int64_t num_labels() const { return num_labels_; }
  // (HF name, tensor) in the order of Layout(); the tensors alias the head's.
  const std::vector<std::pair<std::string, at::Tensor>>& named_tensors() const {
    return tensors_;
  }
  void SetRequiresGrad(bool requires_grad);

  // Logits [batch, num_labels]. FAILED_PRECONDITION for a kBertPooled head
  // when the encoder has no pooler; INVALID_ARGUMENT for mis-shaped outputs.
  // `dropout` (training only) applies its classifier rate where Hugging
  // Face's heads do.
  absl::StatusOr<at::Tensor> Forward(const EncoderOutputs& outputs,
                                     Dropout* dropout = nullptr) const;

 private:
  ClassificationHead(HeadKind kind, int64_t hidden_size, int64_t num_labels,
                     std::vector<std::pair<std::string, at::Tensor>> tensors)
      : kind_(kind),
        hidden_size_(hidden_size),
        num_labels_(num_labels),
        tensors_(std::move(tensors)) {}

  HeadKind kind_;
  int64_t hidden_size_;
  int64_t num_labels_;
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
};

}  // namespace dylora
