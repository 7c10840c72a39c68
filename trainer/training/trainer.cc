#include "trainer/training/trainer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/adapter/adapter_hooks.h"
#include "core/adapter/adapter_io.h"
#include "core/io/safetensors.h"
#include "core/io/torch_tensors.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace dylora {
namespace {

constexpr char kOptimizerFile[] = "optimizer.safetensors";
constexpr char kStateFile[] = "trainer_state.json";
constexpr char kBackboneFile[] = "model.safetensors";  // full fine-tuning
constexpr char kRngFile[] = "rng.safetensors";
constexpr char kDropoutGeneratorTensor[] = "dropout_generator";
// 2: adds the dropout generator's state (rng.safetensors).
constexpr int kCheckpointFormat = 2;

}  // namespace

absl::StatusOr<TrainMethod> ParseTrainMethod(absl::string_view name) {
  if (name == "dylora") return TrainMethod::kDyLora;
  if (name == "lora") return TrainMethod::kLora;
  if (name == "nested-dropout") return TrainMethod::kNestedDropout;
  if (name == "full") return TrainMethod::kFull;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown method '", name, "' (dylora, lora, nested-dropout or full)"));
}

absl::string_view TrainMethodName(TrainMethod method) {
  switch (method) {
    case TrainMethod::kDyLora:
      return "dylora";
    case TrainMethod::kLora:
      return "lora";
    case TrainMethod::kNestedDropout:
      return "nested-dropout";
    case TrainMethod::kFull:
      return "full";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const Encoder& encoder, const TokenizedDataset& train,
    TrainerOptions options) {
  if (train.examples.empty()) {
    return absl::InvalidArgumentError("no training examples");
  }
  if (options.batch_size <= 0 || options.grad_accumulation <= 0) {
    return absl::InvalidArgumentError(
        "batch size and gradient accumulation must be positive");
  }
  for (const auto& [rate, name] :
       {std::pair(options.hidden_dropout, "hidden"),
        std::pair(options.attention_dropout, "attention"),
        std::pair(options.classifier_dropout, "classifier")}) {
    if (rate.has_value() && !(*rate >= 0 && *rate < 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " dropout must be in [0, 1), got ", *rate));
    }
  }
  if (!std::isfinite(options.head_learning_rate)) {
    return absl::InvalidArgumentError("head learning rate must be finite");
  }
  if (!(options.up_lr_ratio > 0) || !std::isfinite(options.up_lr_ratio)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "up-factor learning-rate ratio must be finite and > 0, got ",
        options.up_lr_ratio));
  }
  if (!(options.rank_lr_exponent >= 0) ||
      !std::isfinite(options.rank_lr_exponent)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank learning-rate exponent must be finite and >= 0, got ",
        options.rank_lr_exponent));
  }
  if (!(options.learning_rate > 0) || options.weight_decay < 0 ||
      options.warmup_ratio < 0 || options.warmup_ratio > 1) {
    return absl::InvalidArgumentError(
        "learning rate must be > 0, weight decay >= 0, warm-up ratio in [0, "
        "1]");
  }
  if (options.max_steps <= 0 && options.epochs <= 0) {
    return absl::InvalidArgumentError("give epochs > 0 or max steps > 0");
  }
  if (options.method == TrainMethod::kLora) {
    // Plain LoRA trains all r_max ranks together; r_min stays as given so
    // the adapter can be evaluated truncated to lower ranks (Table 2).
    options.adapter.update_mode = UpdateMode::kFull;
  }
  const int64_t num_labels = train.spec.num_labels();
  options.adapter.head =
      options.adapter.head.value_or(DefaultHeadKind(encoder.config().family));
  DYLORA_ASSIGN_OR_RETURN(
      ClassificationHead head,
      ClassificationHead::Create(
          *options.adapter.head, encoder.config().hidden_size, num_labels,
          options.seed, EncoderLoadOptions{encoder.device(), encoder.dtype()}));
  std::unique_ptr<Trainer> trainer(
      new Trainer(encoder, train, std::move(options), std::move(head)));
  DYLORA_RETURN_IF_ERROR(trainer->Init());
  return trainer;
}

absl::Status Trainer::Init() {
  head_.SetRequiresGrad(true);
  DYLORA_ASSIGN_OR_RETURN(at::Generator generator,
                          MakeGenerator(encoder_.device(), options_.seed + 3));
  dropout_ = Dropout::FromConfig(encoder_.config(), std::move(generator));
  if (options_.hidden_dropout) dropout_.hidden = *options_.hidden_dropout;
  if (options_.attention_dropout)
    dropout_.attention = *options_.attention_dropout;
  if (options_.classifier_dropout) {
    dropout_.classifier = *options_.classifier_dropout;
  }
  DYLORA_ASSIGN_OR_RETURN(
      adapter_,
      DyLoraAdapter::CreateFresh(encoder_, options_.adapter,
                                 head_.named_tensors(), options_.seed + 1));
  const AdapterConfig& config = adapter_->config();
  DYLORA_ASSIGN_OR_RETURN(
      rank_probabilities_,
      config.rank_distribution.Probabilities(config.r_min, config.r_max));
  DYLORA_ASSIGN_OR_RETURN(
      RankSampler sampler,
      RankSampler::Create(config.rank_distribution, config.r_min, config.r_max,
                          options_.seed + 2));
  sampler_ = std::make_unique<RankSampler>(std::move(sampler));

  // One slot per rank row of Wdw and column of Wup, so a step updates only
  // the ranks it trained; head tensors whole. No weight decay on biases
  // (as transformers' Trainer).
  std::vector<ParamSlot> slots;
  if (options_.method == TrainMethod::kFull) {
    // A private trainable copy: the shared encoder stays frozen for others.
    std::map<std::string, at::Tensor> tensors;
    for (const auto& [name, t] : encoder_.weights().NamedTensors()) {
      tensors.emplace(name, t);
    }
    DYLORA_ASSIGN_OR_RETURN(
        trainable_encoder_,
        Encoder::FromTensors(
            encoder_.config(), tensors,
            EncoderLoadOptions{encoder_.device(), encoder_.dtype()},
            "trainable backbone copy", encoder_.fingerprint()));
    for (const auto& [name, t] : trainable_encoder_->weights().NamedTensors()) {
      at::Tensor param = t;
      param.requires_grad_(true);
      // No decay on biases and LayerNorm weights (transformers' Trainer).
      const bool no_decay =
          absl::EndsWith(name, "bias") || absl::StrContains(name, "LayerNorm");
      slots.push_back({param, -1, 0, no_decay ? 0.0 : options_.weight_decay});
      slot_rank_.push_back(0);
    }
  }
  for (const auto& [id, f] : adapter_->factors()) {
    if (trainable_encoder_) break;  // full fine-tuning uses no adapter
    for (int64_t r = 0; r < config.r_max; ++r) {
      slots.push_back({f.down, 0, r, options_.weight_decay});
      slot_rank_.push_back(r + 1);
      slots.push_back(
          {f.up, 1, r, options_.weight_decay, options_.up_lr_ratio});
      slot_rank_.push_back(r + 1);
    }
  }
  const double head_lr_scale =
      options_.head_learning_rate > 0
          ? options_.head_learning_rate / options_.learning_rate
          : 1.0;
  for (const auto& [name, tensor] : head_.named_tensors()) {
    const bool is_bias = absl::EndsWith(name, "bias");
    slots.push_back(
        {tensor, -1, 0, is_bias ? 0.0 : options_.weight_decay, head_lr_scale});
    slot_rank_.push_back(0);
  }
  optimizer_ = std::make_unique<AdamW>(std::move(slots));

  const int64_t examples_per_step =
      options_.batch_size * options_.grad_accumulation;
  const int64_t steps_per_epoch =
      (static_cast<int64_t>(train_.examples.size()) + examples_per_step - 1) /
      examples_per_step;
  total_steps_ = options_.max_steps > 0 ? options_.max_steps
                                        : options_.epochs * steps_per_epoch;
  warmup_steps_ = static_cast<int64_t>(
      std::ceil(options_.warmup_ratio * static_cast<double>(total_steps_)));
  order_ = OrderOfEpoch(epoch_);
  return absl::OkStatus();
}

std::vector<size_t> Trainer::OrderOfEpoch(int64_t epoch) const {
  std::vector<size_t> order =
      EpochOrder(train_.examples.size(), options_.seed, epoch);
  if (!options_.group_by_length) return order;
  return GroupByLength(order, train_, static_cast<size_t>(options_.batch_size),
                       options_.seed, epoch);
}

std::vector<size_t> Trainer::NextIndices() {
  if (offset_ >= order_.size()) {
    ++epoch_;
    offset_ = 0;
    order_ = OrderOfEpoch(epoch_);
  }
  const size_t end = std::min(
      order_.size(), offset_ + static_cast<size_t>(options_.batch_size));
  std::vector<size_t> indices(order_.begin() + offset_, order_.begin() + end);
  offset_ = end;
  return indices;
}

absl::StatusOr<at::Tensor> Trainer::Loss(const Batch& batch, int64_t rank,
                                         UpdateMode mode) {
  std::unique_ptr<TrainingHook> hook;
  if (!trainable_encoder_) {
    DYLORA_ASSIGN_OR_RETURN(hook, TrainingHook::Create(*adapter_, rank, mode));
  }
  DYLORA_ASSIGN_OR_RETURN(EncoderOutputs outputs,
                          model().Forward(batch.inputs, hook.get(), &dropout_));
  DYLORA_ASSIGN_OR_RETURN(at::Tensor logits, head_.Forward(outputs, &dropout_));
  return CallTorch("loss", [&] {
    at::Tensor labels = batch.labels.to(logits.device());
    return train_.spec.regression
               ? at::mse_loss(logits.squeeze(-1), labels.to(logits.dtype()))
               : at::cross_entropy_loss(logits, labels);
  });
}

std::vector<double> Trainer::SlotScales(int64_t rank) const {
  std::vector<double> scales(slot_rank_.size(), 1.0);
  const AdapterConfig& config = adapter_->config();
  const bool frozen = config.update_mode == UpdateMode::kFrozen;
  const bool one_rank = options_.method == TrainMethod::kDyLora;
  const double adapter_scale =
      one_rank ? std::pow(static_cast<double>(rank) /
                              static_cast<double>(config.r_max),
                          options_.rank_lr_exponent)
               : 1.0;
  for (size_t i = 0; i < slot_rank_.size(); ++i) {
    const int64_t r = slot_rank_[i];
    if (r == 0) continue;     // the head always trains at its own rate
    if (!one_rank) continue;  // LoRA and the sum loss reach every rank
    const bool trained = frozen ? r == rank : r <= rank;
    scales[i] = trained ? adapter_scale : 0.0;
  }
  return scales;
}

absl::Status Trainer::RunSteps(
    int64_t n, const std::function<void(const StepReport&)>& on_step) {
  const AdapterConfig& config = adapter_->config();
  for (int64_t i = 0; i < n && !done(); ++i) {
    int64_t rank = config.r_max;
    if (options_.method == TrainMethod::kDyLora) rank = sampler_->Sample();
    if (options_.method == TrainMethod::kNestedDropout ||
        options_.method == TrainMethod::kFull) {
      rank = 0;
    }

    double step_loss = 0;
    for (int64_t micro = 0; micro < options_.grad_accumulation; ++micro) {
      Batch batch = MakeBatch(train_, NextIndices());
      at::Tensor loss;
      if (trainable_encoder_) {
        DYLORA_ASSIGN_OR_RETURN(loss,
                                Loss(batch, config.r_max, UpdateMode::kFull));
      } else if (options_.method == TrainMethod::kNestedDropout) {
        // Sum over ranks weighted by p_B; all ranks learn (full update).
        for (int64_t r = config.r_min; r <= config.r_max; ++r) {
          DYLORA_ASSIGN_OR_RETURN(at::Tensor loss_r,
                                  Loss(batch, r, UpdateMode::kFull));
          at::Tensor weighted = loss_r * rank_probabilities_[r - config.r_min];
          loss = loss.defined() ? loss + weighted : weighted;
        }
      } else {
        DYLORA_ASSIGN_OR_RETURN(loss, Loss(batch, rank, config.update_mode));
      }
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        optimizer_->ZeroGrad();
        return absl::FailedPreconditionError(absl::StrCat(
            "loss is ", value, " at step ", step_ + 1, " (rank ", rank,
            "); stopped before updating, the last checkpoint is intact. "
            "Lower the learning rate or check the data."));
      }
      step_loss += value / options_.grad_accumulation;
      DYLORA_RETURN_IF_ERROR(CallTorch("backward", [&] {
        (loss / static_cast<double>(options_.grad_accumulation)).backward();
      }));
    }
    const double grad_norm =
        ClipGradNorm(optimizer_->Parameters(), options_.max_grad_norm);
    const double lr = LinearWarmupDecay(options_.learning_rate, step_,
                                        warmup_steps_, total_steps_);
    optimizer_->Step(lr, SlotScales(rank));
    optimizer_->ZeroGrad();
    ++step_;
    if (on_step) {
      on_step(StepReport{step_, total_steps_, rank, step_loss, lr, grad_norm});
    }
  }
  return absl::OkStatus();
}

std::string Trainer::StateJson() const {
  nlohmann::json state = {
      {"format_version", kCheckpointFormat},
      {"method", std::string(TrainMethodName(options_.method))},
      {"seed", options_.seed},
      {"step", step_},
      {"total_steps", total_steps_},
      {"epoch", epoch_},
      {"offset", offset_},
      {"train_examples", train_.examples.size()},
      {"batch_size", options_.batch_size},
      {"grad_accumulation", options_.grad_accumulation},
      {"group_by_length", options_.group_by_length},
  };
  return state.dump(2) + "\n";
}

absl::Status Trainer::SaveCheckpoint(const std::string& dir) const {
  DYLORA_ASSIGN_OR_RETURN(auto files, SerializeAdapterFiles(*adapter_));
  DYLORA_ASSIGN_OR_RETURN(std::string optimizer_bytes,
                          SerializeTensors(optimizer_->StateTensors(), {}));
  files.emplace_back(kOptimizerFile, std::move(optimizer_bytes));
  DYLORA_ASSIGN_OR_RETURN(
      at::Tensor generator_state,
      CallTorch("rng state", [&] { return dropout_.generator.get_state(); }));
  DYLORA_ASSIGN_OR_RETURN(
      std::string rng_bytes,
      SerializeTensors({{kDropoutGeneratorTensor, generator_state}}, {}));
  files.emplace_back(kRngFile, std::move(rng_bytes));
  files.emplace_back(kStateFile, StateJson());
  if (trainable_encoder_) {
    DYLORA_ASSIGN_OR_RETURN(
        std::string backbone,
        SerializeTensors(trainable_encoder_->weights().NamedTensors(), {}));
    files.emplace_back(kBackboneFile, std::move(backbone));
  }
  return WriteDirectoryAtomically(dir, files);
}

absl::Status Trainer::LoadCheckpoint(const std::string& dir) {
  const std::string state_path = dir + "/" + kStateFile;
  DYLORA_ASSIGN_OR_RETURN(std::string text,
                          ReadFileToString(state_path, 1 << 20));
  nlohmann::json state = nlohmann::json::parse(text, nullptr, false);
  if (state.is_discarded() || !state.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(state_path, ": not a JSON object"));
  }
  auto get_int = [&](const char* key) -> absl::StatusOr<int64_t> {
    auto it = state.find(key);
    if (it == state.end() || !it->is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(state_path, ": missing integer '", key, "'"));
    }
    return it->get<int64_t>();
  };
  DYLORA_ASSIGN_OR_RETURN(int64_t format, get_int("format_version"));
  if (format != kCheckpointFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(state_path, ": unsupported format_version ", format));
  }
  // The checkpoint must come from the same configuration: anything else
  // would not continue the same run.
  const std::pair<const char*, int64_t> expected[] = {
      {"seed", static_cast<int64_t>(options_.seed)},
      {"total_steps", total_steps_},
      {"train_examples", static_cast<int64_t>(train_.examples.size())},
      {"batch_size", options_.batch_size},
      {"grad_accumulation", options_.grad_accumulation},
  };
  for (const auto& [key, want] : expected) {
    DYLORA_ASSIGN_OR_RETURN(int64_t got, get_int(key));
    if (got != want) {
      return absl::FailedPreconditionError(
          absl::StrCat(state_path, ": checkpoint has ", key, " = ", got,
                       " but this run has ", want));
    }
  }
  auto method = state.find("method");
  if (method == state.end() || !method->is_string() ||
      method->get<std::string>() != TrainMethodName(options_.method)) {
    return absl::FailedPreconditionError(
        absl::StrCat(state_path, ": checkpoint is not for method ",
                     TrainMethodName(options_.method)));
  }
  auto grouped = state.find("group_by_length");
  if (grouped == state.end() || !grouped->is_boolean() ||
      grouped->get<bool>() != options_.group_by_length) {
    return absl::FailedPreconditionError(
        absl::StrCat(state_path,
                     ": checkpoint's data order (group_by_length) differs "
                     "from this run's"));
  }
  DYLORA_ASSIGN_OR_RETURN(int64_t step, get_int("step"));
  DYLORA_ASSIGN_OR_RETURN(int64_t epoch, get_int("epoch"));
  DYLORA_ASSIGN_OR_RETURN(int64_t offset, get_int("offset"));
  if (step < 0 || step > total_steps_ || epoch < 0 || offset < 0 ||
      offset > static_cast<int64_t>(train_.examples.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(state_path, ": position out of range"));
  }

  DYLORA_ASSIGN_OR_RETURN(auto saved, LoadAdapter(dir, encoder_));
  DYLORA_ASSIGN_OR_RETURN(auto optimizer_tensors,
                          LoadTensors(dir + "/" + kOptimizerFile));
  DYLORA_ASSIGN_OR_RETURN(auto rng_tensors, LoadTensors(dir + "/" + kRngFile));
  auto generator_state = rng_tensors.find(kDropoutGeneratorTensor);
  if (generator_state == rng_tensors.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/", kRngFile, ": missing tensor '",
                     kDropoutGeneratorTensor, "'"));
  }
  std::vector<std::pair<std::string, at::Tensor>> optimizer_state;
  for (const auto& [name, tensor] : optimizer_->StateTensors()) {
    auto it = optimizer_tensors.find(name);
    if (it == optimizer_tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, "/", kOptimizerFile, ": missing tensor '", name, "'"));
    }
    optimizer_state.emplace_back(name, it->second);
  }
  // Validate everything before changing anything.
  if (saved->factors().size() != adapter_->factors().size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": the checkpoint adapts different layers"));
  }
  for (const auto& [id, f] : adapter_->factors()) {
    const LoraFactors* other = saved->Find(id);
    if (other == nullptr || !other->down.sizes().equals(f.down.sizes()) ||
        !other->up.sizes().equals(f.up.sizes())) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, ": the checkpoint's ", id.ModulePath(), " does not match"));
    }
  }
  for (const auto& [name, tensor] : head_.named_tensors()) {
    const at::Tensor* other = saved->FindHeadTensor(name);
    if (other == nullptr || !other->sizes().equals(tensor.sizes())) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": the checkpoint's head tensor ", name,
                       " is missing or has another shape"));
    }
  }
  std::map<std::string, at::Tensor> backbone;
  if (trainable_encoder_) {
    DYLORA_ASSIGN_OR_RETURN(backbone, LoadTensors(dir + "/" + kBackboneFile));
    for (const auto& [name, t] : trainable_encoder_->weights().NamedTensors()) {
      auto it = backbone.find(name);
      if (it == backbone.end() || !it->second.sizes().equals(t.sizes())) {
        return absl::FailedPreconditionError(
            absl::StrCat(dir, "/", kBackboneFile, ": tensor ", name,
                         " is missing or has another shape"));
      }
    }
  }
  // set_state validates the state's size and dtype; do it on a scratch
  // generator first so a bad file changes nothing.
  DYLORA_RETURN_IF_ERROR(CallTorch("restore dropout generator", [&] {
    at::Generator scratch = dropout_.generator.clone();
    scratch.set_state(generator_state->second);
  }));
  DYLORA_RETURN_IF_ERROR(optimizer_->RestoreState(optimizer_state));
  dropout_.generator.set_state(generator_state->second);
  DYLORA_RETURN_IF_ERROR(CallTorch("restore checkpoint", [&] {
    at::NoGradGuard no_grad;
    for (const auto& [id, f] : adapter_->factors()) {
      const LoraFactors* other = saved->Find(id);
      f.down.copy_(other->down);
      f.up.copy_(other->up);
    }
    for (const auto& [name, tensor] : head_.named_tensors()) {
      at::Tensor target = tensor;
      target.copy_(*saved->FindHeadTensor(name));
    }
    if (trainable_encoder_) {
      for (const auto& [name, t] :
           trainable_encoder_->weights().NamedTensors()) {
        at::Tensor target = t;
        target.copy_(backbone.at(name));
      }
    }
  }));
  adapter_->set_rank_metrics(saved->rank_metrics());
  step_ = step;
  epoch_ = epoch;
  offset_ = static_cast<size_t>(offset);
  order_ = OrderOfEpoch(epoch_);
  // Replay the rank draws so the resumed run samples what the original did.
  DYLORA_ASSIGN_OR_RETURN(
      RankSampler sampler,
      RankSampler::Create(adapter_->config().rank_distribution,
                          adapter_->config().r_min, adapter_->config().r_max,
                          options_.seed + 2));
  *sampler_ = std::move(sampler);
  if (options_.method == TrainMethod::kDyLora) {
    for (int64_t i = 0; i < step_; ++i) sampler_->Sample();
  }
  return absl::OkStatus();
}

}  // namespace dylora
