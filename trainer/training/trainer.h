// The DyLoRA training loop (Algorithm 1 of arXiv 2210.07558) and its
// baselines over a frozen encoder:
//   dylora          each optimizer step samples one rank b ~ p_B, shared by
//                   every adapted layer and every micro-batch of the step;
//                   loss at rank b; frozen (row/column b only) or full update
//   lora            always rank r_max, full update (plain LoRA)
//   nested-dropout  the sum loss over all ranks weighted by p_B (Table 7)
//   full            full fine-tuning of a trainable copy of the backbone and
//                   the head, no adapter (the upper bound)
// Trainable: the adapter's factors and the task head; the backbone is frozen
// and never in the optimizer (except in full fine-tuning, which trains a
// copy and leaves the shared encoder untouched). AdamW with weight decay (not
// on biases), linear warm-up and decay, gradient clipping and accumulation.
//
// Determinism: the same seed, data and options give the same adapter bit for
// bit on CPU, and a run resumed from a checkpoint continues exactly (the
// checkpoint holds weights, optimizer moments, step, data position and the
// dropout generator's state; the rank sequence is replayed from the seed).
//
// Not thread-safe: one Trainer per thread; the encoder may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/adapter/adapter.h"
#include "core/model/dropout.h"
#include "core/model/encoder.h"
#include "core/model/heads.h"
#include "trainer/data/batches.h"
#include "trainer/training/adamw.h"

namespace dylora {

enum class TrainMethod { kDyLora, kLora, kNestedDropout, kFull };
absl::StatusOr<TrainMethod> ParseTrainMethod(absl::string_view name);
absl::string_view TrainMethodName(TrainMethod method);

struct TrainerOptions {
  TrainMethod method = TrainMethod::kDyLora;
  // Ranks, alpha, p_B, update mode, targets, and the head kind (absent: the
  // family's Hugging Face head).
  AdapterConfig adapter;
  // Adapter and head rates from the SST-2 dev sweep (docs/reproduction.md).
  // DyLoRA: the adapter's rate at r_max (rank_lr_exponent scales the rest).
  double learning_rate = 1e-3;
  // The task head's peak learning rate; <= 0: learning_rate. A fresh head
  // has further to go than the adapter's rows.
  double head_learning_rate = 1e-2;
  // LoRA+ (Hayou et al., 2024): the up factors' (Wup, lora_B) rate relative
  // to the down factors'; 1 trains both at learning_rate.
  double up_lr_ratio = 1.0;
  // DyLoRA: a step at rank b trains the adapter at (b / r_max)^exponent
  // times the scheduled rate (0: the same rate at every rank). The alpha/b
  // scale makes one Adam step at rank 1 move the layer's output r_max times
  // further than one at r_max; an exponent > 0 evens that out (the sweep's
  // round 10: 0.5 at lr 1e-3 beat one rate at 5e-4 at six ranks of eight).
  double rank_lr_exponent = 0.5;
  // Training-time dropout rates; absent: what the backbone's config.json
  // declares (hidden_dropout_prob, attention_probs_dropout_prob,
  // classifier_dropout). Never applied at evaluation.
  std::optional<double> hidden_dropout;
  std::optional<double> attention_dropout;
  std::optional<double> classifier_dropout;
  double weight_decay = 0.1;
  double warmup_ratio = 0.06;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  int64_t batch_size = 32;     // per micro-batch
  // Batches of similar lengths (GroupByLength): less padding, faster steps.
  bool group_by_length = true;
  int64_t grad_accumulation = 1;
  int64_t epochs = 1;
  int64_t max_steps = -1;  // > 0 overrides epochs
  uint64_t seed = 42;
};

struct StepReport {
  int64_t step = 0;  // optimizer steps done, after this one
  int64_t total_steps = 0;
  int64_t rank = 0;  // the sampled rank (0 for nested-dropout: all ranks)
  double loss = 0;
  double learning_rate = 0;
  double grad_norm = 0;
};

class Trainer {
 public:
  // `train` must outlive the trainer. Builds a fresh adapter and head
  // (seeded) for `encoder`.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const Encoder& encoder, const TokenizedDataset& train,
      TrainerOptions options);

  // Runs up to `n` optimizer steps (fewer at the end of training). A
  // non-finite loss stops with FAILED_PRECONDITION before any update.
  absl::Status RunSteps(
      int64_t n, const std::function<void(const StepReport&)>& on_step = {});

  // Checkpoint: <dir>/adapter (SaveAdapter), <dir>/optimizer.safetensors,
  // <dir>/rng.safetensors (dropout generator), <dir>/trainer_state.json;
  // written to a staging directory, then renamed.
  absl::Status SaveCheckpoint(const std::string& dir) const;
  // Restores a checkpoint written by a trainer with the same options.
  absl::Status LoadCheckpoint(const std::string& dir);

  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  bool done() const { return step_ >= total_steps_; }
  const DyLoraAdapter& adapter() const { return *adapter_; }
  DyLoraAdapter& mutable_adapter() { return *adapter_; }
  const ClassificationHead& head() const { return head_; }
  // The encoder the trainer runs: the shared frozen one, or its trainable
  // copy in full fine-tuning.
  const Encoder& model() const {
    return trainable_encoder_ ? *trainable_encoder_ : encoder_;
  }
  bool trains_backbone() const { return trainable_encoder_ != nullptr; }
  const TrainerOptions& options() const { return options_; }
  // The rates in effect (options or the backbone's config).
  const Dropout& dropout() const { return dropout_; }

 private:
  Trainer(const Encoder& encoder, const TokenizedDataset& train,
          TrainerOptions options, ClassificationHead head)
      : encoder_(encoder),
        train_(train),
        options_(std::move(options)),
        head_(std::move(head)) {}

  absl::Status Init();
  // The next micro-batch's indices; advances the data position.
  std::vector<size_t> NextIndices();
  // Draws dropout masks, so not const.
  absl::StatusOr<at::Tensor> Loss(const Batch& batch, int64_t rank,
                                  UpdateMode mode);
  // Each optimizer slot's multiplier at a step of `rank` (AdamW::Step's
  // step_scales): 0 for the ranks the step does not train.
  std::vector<double> SlotScales(int64_t rank) const;
  std::string StateJson() const;
  // The data order of epoch `epoch` (shuffled, grouped by length if asked).
  std::vector<size_t> OrderOfEpoch(int64_t epoch) const;

  const Encoder& encoder_;
  const TokenizedDataset& train_;
  const TrainerOptions options_;
  ClassificationHead head_;
  std::unique_ptr<DyLoraAdapter> adapter_;
  std::unique_ptr<Encoder> trainable_encoder_;  // full fine-tuning only
  std::unique_ptr<AdamW> optimizer_;
  Dropout dropout_;
  std::vector<int64_t> slot_rank_;          // 0 for head slots (always active)
  std::vector<double> rank_probabilities_;  // p_B over r_min..r_max
  std::unique_ptr<RankSampler> sampler_;
  int64_t total_steps_ = 0;
  int64_t warmup_steps_ = 0;
  int64_t step_ = 0;
  int64_t epoch_ = 0;
  size_t offset_ = 0;  // position in the current epoch's order
  std::vector<size_t> order_;
};

}  // namespace dylora
