// A BERT/RoBERTa-family transformer encoder (post-LN, as Hugging Face's
// BertModel / RobertaModel in eval mode) over plain frozen at::Tensors and
// functional ops. Adapters plug in through LinearHook; the encoder itself
// never owns trainable state.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/model_config.h"
#include "core/model/dropout.h"
#include "core/model/encoder_weights.h"
#include "core/model/linear_hook.h"
#include "core/model/packed_inputs.h"

namespace dylora {

// One batch. All [batch, seq]; input_ids is required and integral,
// token_type_ids (default zeros) integral, attention_mask (default ones)
// integral, bool or floating with values 0/1. Any device: they are moved to
// the encoder's.
struct EncoderInputs {
  at::Tensor input_ids;
  at::Tensor token_type_ids;
  at::Tensor attention_mask;
};

struct EncoderOutputs {
  at::Tensor last_hidden_state;  // [batch, seq, hidden]
  at::Tensor pooler_output;      // [batch, hidden]; undefined without a pooler
  // The inputs' mask on the encoder's device (undefined when the inputs had
  // none: every position is real), for pooling over real tokens.
  at::Tensor attention_mask;
};

// Immutable after Load: Forward is const and safe to call from several
// threads at once (the weights are only read). Backbone tensors have
// requires_grad = false; Forward works with or without grad mode and under
// c10::InferenceMode, so gradients flow into whatever a LinearHook adds.
class Encoder {
 public:
  using LoadOptions = EncoderLoadOptions;

  // <model_dir>/config.json + <model_dir>/model.safetensors.
  static absl::StatusOr<std::unique_ptr<Encoder>> Load(
      const std::string& model_dir, const LoadOptions& options = {});
  // From tensors already in memory (names as in a checkpoint). `origin`
  // names them in errors; `fingerprint` is reported by fingerprint().
  static absl::StatusOr<std::unique_ptr<Encoder>> FromTensors(
      const EncoderConfig& config,
      const std::map<std::string, at::Tensor>& tensors,
      const LoadOptions& options = {}, std::string origin = "<memory>",
      std::string fingerprint = "");

  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // Validates the inputs (shapes, dtypes, id ranges, sequence length against
  // the position table: INVALID_ARGUMENT) and runs the encoder. Every
  // adaptable linear layer goes through `hook` when it is not null.
  // `dropout` (training only) applies hidden and attention dropout where
  // BERT does; its generator must be on the encoder's device type.
  absl::StatusOr<EncoderOutputs> Forward(const EncoderInputs& inputs,
                                         const LinearHook* hook = nullptr,
                                         Dropout* dropout = nullptr) const;

  // The padding-free forward (core/model/packed_inputs.h), for callers that
  // packed ids they validated on the host (the server's engine): no input
  // checks, so no device syncs. No dropout. LibTorch errors come back as
  // INTERNAL.
  // last_hidden_state comes back in the padded [rows, longest, hidden]
  // layout (zeros at padded positions) with the packed batch's mask, so
  // pooling and heads take it as they take Forward's.
  absl::StatusOr<EncoderOutputs> ForwardPacked(
      const PackedInputs& inputs, const LinearHook* hook = nullptr) const;

  const EncoderConfig& config() const { return config_; }
  // Content fingerprint of model.safetensors (core/io/fingerprint.h); empty
  // for FromTensors without one.
  const std::string& fingerprint() const { return fingerprint_; }
  const EncoderWeights& weights() const { return weights_; }
  bool has_pooler() const { return weights_.pooler.has_value(); }
  c10::Device device() const { return options_.device; }
  c10::ScalarType dtype() const { return options_.dtype; }
  // The longest sequence Forward accepts (position table minus offset).
  int64_t max_sequence_length() const;

  // Frozen weight [out, in] / bias [out] of one adaptable linear layer;
  // INVALID_ARGUMENT for a layer index out of range.
  absl::StatusOr<at::Tensor> LinearWeight(const LinearId& id) const;
  absl::StatusOr<at::Tensor> LinearBias(const LinearId& id) const;
  int64_t InFeatures(LinearKind kind) const;
  int64_t OutFeatures(LinearKind kind) const;
  // Every (layer, kind) for the given kinds, layer-major in execution order.
  std::vector<LinearId> LinearIds(const std::vector<LinearKind>& kinds) const;

 private:
  Encoder(EncoderConfig config, EncoderWeights weights, LoadOptions options,
          std::string fingerprint)
      : config_(std::move(config)),
        weights_(std::move(weights)),
        options_(options),
        fingerprint_(std::move(fingerprint)) {}

  absl::Status ValidateInputs(const EncoderInputs& inputs) const;
  // The padded forward pass proper; may throw (Forward converts).
  EncoderOutputs Run(const EncoderInputs& inputs, const LinearHook* hook,
                     Dropout* dropout) const;

  // The pieces Run and ForwardPacked share; all may throw.
  // Word + token type + position embeddings, then LayerNorm (any shape).
  at::Tensor Embed(const at::Tensor& ids, const at::Tensor& types,
                   const at::Tensor& positions) const;
  // q, k, v [B, S, H] -> attention context [B, S, H] (attention dropout
  // from `dropout` when given).
  at::Tensor Attend(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const std::optional<at::Tensor>& mask,
                    Dropout* dropout) const;
  // Every encoder layer over x [..., H]; `attend` maps q, k, v (x's shape)
  // to the context (x's shape), so the layers run padded or packed.
  using AttentionFunction = std::function<at::Tensor(
      const at::Tensor&, const at::Tensor&, const at::Tensor&)>;
  at::Tensor Layers(at::Tensor x, const LinearHook* hook, Dropout* dropout,
                    const AttentionFunction& attend) const;
  // mask01 [B, S] (1 = real) -> additive key mask [B, 1, 1, S].
  std::optional<at::Tensor> AdditiveMask(const at::Tensor& mask01) const;
  // Sets pooler_output from last_hidden_state when the model has a pooler.
  void Pool(EncoderOutputs& outputs) const;

  const EncoderConfig config_;
  const EncoderWeights weights_;
  const LoadOptions options_;
  const std::string fingerprint_;
};

}  // namespace dylora
