// The frozen tensors of a BERT/RoBERTa encoder, matched by their Hugging Face
// names against what config.json says the model must hold.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/io/model_config.h"
#include "core/model/linear_hook.h"

namespace dylora {

// Where and in which precision the backbone lives.
struct EncoderLoadOptions {
  c10::Device device = c10::Device(c10::kCPU);
  // A floating type: kFloat (default), kDouble, kHalf or kBFloat16.
  c10::ScalarType dtype = c10::kFloat;
};

struct LinearWeights {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]
};

struct LayerNormWeights {
  at::Tensor weight;  // [hidden]
  at::Tensor bias;    // [hidden]
};

struct EncoderLayerWeights {
  LinearWeights query, key, value, attention_output;
  LayerNormWeights attention_norm;  // attention.output.LayerNorm
  LinearWeights intermediate, output;
  LayerNormWeights output_norm;  // output.LayerNorm

  const LinearWeights& linear(LinearKind kind) const;
};

// Every tensor has requires_grad = false, is contiguous, and sits on the
// options' device in the options' dtype. Plain value type: copies share
// storage (at::Tensor is a reference).
struct EncoderWeights {
  at::Tensor word_embeddings;        // [vocab, hidden]
  at::Tensor position_embeddings;    // [max_positions, hidden]
  at::Tensor token_type_embeddings;  // [type_vocab, hidden]
  LayerNormWeights embeddings_norm;
  std::vector<EncoderLayerWeights> layers;
  std::optional<LinearWeights>
      pooler;  // pooler.dense; absent in some checkpoints

  // (unprefixed Hugging Face name, tensor), in checkpoint order.
  std::vector<std::pair<std::string, at::Tensor>> NamedTensors() const;
};

// Matches `tensors` (a whole checkpoint, names as written in the file) with
// the shapes `config` implies. Accepts unprefixed names
// ("embeddings.word_embeddings.weight"), names under "bert." / "roberta." /
// "<model_type>.", and the legacy LayerNorm.gamma/beta spelling. Ignores
// tensors that belong to heads (classifier.*, cls.*, lm_head.*, qa_outputs.*)
// and the "embeddings.position_ids" buffer. Every missing, unexpected or
// mis-shaped tensor is listed in ONE INVALID_ARGUMENT error whose message
// starts with `origin` (the file name). Non-floating tensors are rejected.
absl::StatusOr<EncoderWeights> BuildEncoderWeights(
    const EncoderConfig& config,
    const std::map<std::string, at::Tensor>& tensors, absl::string_view origin,
    const EncoderLoadOptions& options);

}  // namespace dylora
