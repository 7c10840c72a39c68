#include "trainer/pipeline.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/adapter/adapter_io.h"
#include "core/glue/metrics.h"
#include "core/io/torch_tensors.h"
#include "core/model/pooling_config.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "trainer/eval/rank_eval.h"

namespace dylora {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::StatusOr<Tokenizer> LoadTokenizer(const std::string& model_dir) {
  const std::string json = model_dir + "/tokenizer.json";
  if (fs::exists(json)) return Tokenizer::FromTokenizerJsonFile(json);
  const std::string vocab = model_dir + "/vocab.txt";
  if (fs::exists(vocab)) return Tokenizer::FromBertVocabFile(vocab, true);
  return absl::NotFoundError(
      absl::StrCat(model_dir, " has neither tokenizer.json nor vocab.txt"));
}

// The newest checkpoints/step-<N> directory, if any.
std::optional<std::string> NewestCheckpoint(const std::string& output_dir) {
  const fs::path root = fs::path(output_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return std::nullopt;
  int64_t best = -1;
  std::string best_path;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (name.rfind("step-", 0) == 0 &&
        absl::SimpleAtoi(name.substr(5), &step) && step > best &&
        fs::exists(entry.path() / "trainer_state.json")) {
      best = step;
      best_path = entry.path().string();
    }
  }
  if (best < 0) return std::nullopt;
  return best_path;
}

// Full fine-tuning's output: a complete checkpoint (config.json and
// model.safetensors with the backbone and the classifier under Hugging Face
// names), loadable by Encoder::Load.
absl::Status SaveFullModel(const Trainer& trainer,
                           const PipelineOptions& options) {
  DYLORA_ASSIGN_OR_RETURN(
      std::string config,
      ReadFileToString(options.model_dir + "/config.json", 1 << 20));
  std::vector<std::pair<std::string, at::Tensor>> tensors =
      trainer.model().weights().NamedTensors();
  for (const auto& named : trainer.head().named_tensors())
    tensors.push_back(named);
  DYLORA_ASSIGN_OR_RETURN(std::string weights,
                          SerializeTensors(tensors, {{"format", "pt"}}));
  return WriteDirectoryAtomically(options.output_dir,
                                  {{"config.json", std::move(config)},
                                   {"model.safetensors", std::move(weights)}});
}

// The head `options.head` names; "auto": the checkpoint's declared pooling,
// else the family's Hugging Face head. `why` says which and why.
absl::StatusOr<HeadKind> ResolveHead(const PipelineOptions& options,
                                     const Encoder& encoder, std::string* why) {
  if (options.head != "auto") {
    DYLORA_ASSIGN_OR_RETURN(HeadKind kind, ParseHeadKind(options.head));
    *why = "as asked";
    return kind;
  }
  DYLORA_ASSIGN_OR_RETURN(std::optional<PoolingMode> declared,
                          ReadDeclaredPooling(options.model_dir));
  if (declared.has_value()) {
    *why = "the pooling the checkpoint declares (modules.json)";
    return PooledHeadKind(*declared);
  }
  *why = "no pooling declared; the family's Hugging Face head";
  return DefaultHeadKind(encoder.config().family);
}

// result.json: one run, machine-readable (scripts/reproduce.sh collects
// these under results/).
std::string ResultJson(const PipelineOptions& options, const Trainer& trainer,
                       const PipelineResult& result, size_t train_examples,
                       size_t dev_examples) {
  const TrainerOptions& t = options.trainer;
  const AdapterConfig& a = trainer.adapter().config();
  nlohmann::json targets = nlohmann::json::array();
  for (LinearKind k : a.target_kinds) targets.push_back(LinearKindName(k));
  nlohmann::json ranks = nlohmann::json::array();
  for (const auto& [rank, metrics] : result.all_metrics) {
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [name, value] : metrics) values[name] = value;
    ranks.push_back({{"rank", rank}, {"metrics", values}});
  }
  if (result.all_metrics.empty()) {  // full fine-tuning: one value, no rank
    for (const auto& [rank, value] : result.rank_metrics.values) {
      ranks.push_back(
          {{"rank", rank}, {"metrics", {{result.rank_metrics.metric, value}}}});
    }
  }
  const Dropout& d = trainer.dropout();
  nlohmann::json j = {
      {"format", "dylora-run/1"},
      {"task", options.task},
      {"method", std::string(TrainMethodName(t.method))},
      {"seed", t.seed},
      {"r_min", a.r_min},
      {"r_max", a.r_max},
      {"alpha", a.alpha},
      {"update_mode", std::string(UpdateModeName(a.update_mode))},
      {"rank_distribution", a.rank_distribution.ToString()},
      {"targets", targets},
      {"head", std::string(HeadKindName(a.head_kind()))},
      {"hyper",
       {{"lr", t.learning_rate},
        {"head_lr",
         t.head_learning_rate > 0 ? t.head_learning_rate : t.learning_rate},
        {"up_lr_ratio", t.up_lr_ratio},
        {"rank_lr_exponent", t.rank_lr_exponent},
        {"batch_size", t.batch_size},
        {"grad_accumulation", t.grad_accumulation},
        {"group_by_length", t.group_by_length},
        {"epochs", t.epochs},
        {"max_steps", t.max_steps},
        {"warmup_ratio", t.warmup_ratio},
        {"weight_decay", t.weight_decay},
        {"max_grad_norm", t.max_grad_norm},
        {"max_seq_len", options.max_seq_len},
        {"hidden_dropout", d.hidden},
        {"attention_dropout", d.attention},
        {"classifier_dropout", d.classifier}}},
      {"steps", result.steps},
      {"train_seconds", result.train_seconds},
      {"eval_seconds", result.eval_seconds},
      {"train_examples", train_examples},
      {"dev_examples", dev_examples},
      {"threads", at::get_num_threads()},
      {"metric", result.rank_metrics.metric},
      {"ranks", ranks},
  };
  return j.dump(2) + "\n";
}

absl::Status PrepareOutput(const PipelineOptions& options) {
  std::error_code ec;
  const fs::path out(options.output_dir);
  if (options.output_dir.empty()) {
    return absl::InvalidArgumentError("no output directory given");
  }
  if ((fs::exists(out / kAdapterConfigFile, ec) ||
       fs::exists(out / "model.safetensors", ec)) &&
      !options.overwrite && !options.resume) {
    return absl::AlreadyExistsError(absl::StrCat(
        options.output_dir,
        " already holds an adapter; pass --overwrite to replace it or "
        "--resume to continue its training"));
  }
  fs::create_directories(out, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", options.output_dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PipelineResult> RunTrainingPipeline(
    const PipelineOptions& options, const PipelineCallbacks& callbacks) {
  auto say = [&](const std::string& message) {
    if (callbacks.on_message) callbacks.on_message(message);
  };
  DYLORA_ASSIGN_OR_RETURN(GlueTaskSpec spec, GlueTaskByName(options.task));
  DYLORA_RETURN_IF_ERROR(PrepareOutput(options));

  say(absl::StrCat("loading the backbone from ", options.model_dir));
  DYLORA_ASSIGN_OR_RETURN(auto encoder, Encoder::Load(options.model_dir));
  DYLORA_ASSIGN_OR_RETURN(Tokenizer tokenizer,
                          LoadTokenizer(options.model_dir));

  ReadOptions read_train{.skip_bad_rows = options.skip_bad_rows,
                         .max_examples = options.max_train_examples};
  ReadOptions read_dev{.skip_bad_rows = options.skip_bad_rows,
                       .max_examples = options.max_dev_examples};
  DYLORA_ASSIGN_OR_RETURN(
      Dataset train_set,
      ReadGlueTsv(options.train_file, spec.task, read_train));
  DYLORA_ASSIGN_OR_RETURN(Dataset dev_set,
                          ReadGlueTsv(options.dev_file, spec.task, read_dev));
  for (const Dataset* d : {&train_set, &dev_set}) {
    say(absl::StrCat(
        "read ", d->examples.size(), " examples from ", d->path,
        d->skipped_rows
            ? absl::StrCat(" (skipped ", d->skipped_rows, " bad rows)")
            : ""));
    for (const std::string& reason : d->skipped_reasons)
      say("  skipped " + reason);
  }
  DYLORA_ASSIGN_OR_RETURN(
      TokenizedDataset train,
      TokenizeDataset(train_set, tokenizer, options.max_seq_len));
  DYLORA_ASSIGN_OR_RETURN(
      TokenizedDataset dev,
      TokenizeDataset(dev_set, tokenizer, options.max_seq_len));

  TrainerOptions trainer_options = options.trainer;
  std::string head_reason;
  DYLORA_ASSIGN_OR_RETURN(trainer_options.adapter.head,
                          ResolveHead(options, *encoder, &head_reason));
  say(absl::StrCat("task head: ", HeadKindName(*trainer_options.adapter.head),
                   " (", head_reason, ")"));
  DYLORA_ASSIGN_OR_RETURN(auto trainer,
                          Trainer::Create(*encoder, train, trainer_options));
  say(
      absl::StrFormat("dropout (training only): hidden %.2f, attention %.2f, "
                      "classifier %.2f",
                      trainer->dropout().hidden, trainer->dropout().attention,
                      trainer->dropout().classifier));
  if (options.resume) {
    if (auto checkpoint = NewestCheckpoint(options.output_dir)) {
      DYLORA_RETURN_IF_ERROR(trainer->LoadCheckpoint(*checkpoint));
      say(absl::StrCat("resumed from ", *checkpoint, " at step ",
                       trainer->step()));
    } else {
      say("no checkpoint to resume from; starting fresh");
    }
  }
  const AdapterConfig& config = trainer->adapter().config();
  say(absl::StrCat("training ", TrainMethodName(options.trainer.method),
                   " ranks ", config.r_min, "..", config.r_max, ", ",
                   trainer->total_steps(), " steps"));

  RankEvalOptions eval_options{.batch_size = options.eval_batch_size,
                               .r_min = config.r_min,
                               .r_max = config.r_max,
                               .tolerance = options.tolerance};
  const auto train_start = Clock::now();
  std::string last_checkpoint;
  while (!trainer->done()) {
    int64_t chunk = trainer->total_steps() - trainer->step();
    for (int64_t every : {options.eval_every, options.checkpoint_every}) {
      if (every > 0) chunk = std::min(chunk, every - trainer->step() % every);
    }
    absl::Status status = trainer->RunSteps(chunk, [&](const StepReport& r) {
      if (callbacks.on_step) callbacks.on_step(r, SecondsSince(train_start));
    });
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat(
              status.message(),
              last_checkpoint.empty()
                  ? ""
                  : absl::StrCat(" Last good checkpoint: ", last_checkpoint)));
    }
    const int64_t step = trainer->step();
    if (options.checkpoint_every > 0 && step % options.checkpoint_every == 0) {
      const std::string dir =
          absl::StrCat(options.output_dir, "/checkpoints/step-", step);
      DYLORA_RETURN_IF_ERROR(trainer->SaveCheckpoint(dir));
      if (!last_checkpoint.empty()) {
        std::error_code ec;
        fs::remove_all(last_checkpoint, ec);  // keep only the newest
      }
      last_checkpoint = dir;
      say(absl::StrCat("checkpoint ", dir));
    }
    if (options.eval_every > 0 && step % options.eval_every == 0 &&
        !trainer->done()) {
      std::string line = absl::StrCat("step ", step, " dev ",
                                      GlueMetricName(spec.metrics.front()));
      const std::vector<double> labels = Labels(dev);
      std::vector<int64_t> ranks = {config.r_min, config.r_max};
      if (trainer->trains_backbone()) ranks = {0};
      for (int64_t rank : ranks) {
        auto predictions =
            rank == 0
                ? Predict(trainer->model(), nullptr, trainer->head(), dev,
                          options.eval_batch_size)
                : PredictAtRank(*encoder, trainer->adapter(), trainer->head(),
                                dev, rank, options.eval_batch_size);
        if (!predictions.ok()) return predictions.status();
        DYLORA_ASSIGN_OR_RETURN(
            double value,
            ComputeGlueMetric(spec.metrics.front(), *predictions, labels));
        absl::StrAppend(
            &line, rank == 0 ? absl::StrFormat("  %.4f", value)
                             : absl::StrFormat("  r=%d: %.4f", rank, value));
      }
      say(line);
    }
  }
  PipelineResult result;
  result.steps = trainer->step();
  result.train_seconds = SecondsSince(train_start);

  say(absl::StrCat("evaluating every rank ", config.r_min, "..", config.r_max,
                   " on ", dev.examples.size(), " dev examples"));
  const auto eval_start = Clock::now();
  if (trainer->trains_backbone()) {
    // Full fine-tuning has no rank: one evaluation, drawn as a flat line
    // across the rank range (the upper bound the adapters are compared to).
    DYLORA_ASSIGN_OR_RETURN(std::vector<double> predictions,
                            Predict(trainer->model(), nullptr, trainer->head(),
                                    dev, options.eval_batch_size));
    DYLORA_ASSIGN_OR_RETURN(
        double value,
        ComputeGlueMetric(spec.metrics.front(), predictions, Labels(dev)));
    result.rank_metrics.metric =
        std::string(GlueMetricName(spec.metrics.front()));
    for (int64_t r = config.r_min; r <= config.r_max; ++r) {
      result.rank_metrics.values.emplace_back(r, value);
    }
    DYLORA_RETURN_IF_ERROR(SaveFullModel(*trainer, options));
  } else {
    std::vector<std::vector<std::pair<std::string, double>>> per_rank;
    DYLORA_ASSIGN_OR_RETURN(
        result.rank_metrics,
        EvaluateRanks(*encoder, trainer->adapter(), trainer->head(), dev,
                      eval_options, &per_rank));
    for (size_t i = 0; i < per_rank.size(); ++i) {
      result.all_metrics.emplace_back(result.rank_metrics.values[i].first,
                                      std::move(per_rank[i]));
    }
    trainer->mutable_adapter().set_rank_metrics(result.rank_metrics);
    DYLORA_RETURN_IF_ERROR(SaveAdapter(trainer->adapter(), options.output_dir));
  }
  result.eval_seconds = SecondsSince(eval_start);

  std::string label =
      options.trainer.method == TrainMethod::kDyLora
          ? "DyLoRA"
          : absl::StrCat(TrainMethodName(options.trainer.method),
                         " r=", config.r_max);
  if (trainer->trains_backbone()) label = "full fine-tuning";
  result.series.push_back({label, result.rank_metrics});
  if (!options.compare_adapter_dir.empty()) {
    DYLORA_ASSIGN_OR_RETURN(auto other,
                            ReadAdapter(options.compare_adapter_dir));
    if (other->rank_metrics().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.compare_adapter_dir, " has no rank table to compare with"));
    }
    result.series.push_back(
        {absl::StrCat(
             "compare: ",
             fs::path(options.compare_adapter_dir).filename().string()),
         other->rank_metrics()});
  }
  result.table_text = RankTableText(result.series);
  if (spec.metrics.size() > 1) {
    for (const auto& [rank, metrics] : result.all_metrics) {
      absl::StrAppend(&result.table_text, "rank ", rank, ":");
      for (const auto& [name, value] : metrics) {
        absl::StrAppend(&result.table_text,
                        absl::StrFormat("  %s %.4f", name, value));
      }
      absl::StrAppend(&result.table_text, "\n");
    }
  }
  const std::string base = options.output_dir + "/rank_table";
  DYLORA_RETURN_IF_ERROR(
      WriteFileAtomically(base + ".csv", RankTableCsv(result.series)));
  DYLORA_RETURN_IF_ERROR(
      WriteFileAtomically(base + ".json", RankTableJson(result.series)));
  DYLORA_RETURN_IF_ERROR(WriteFileAtomically(
      base + ".svg",
      RankPlotSvg(result.series,
                  absl::StrCat(spec.name, " dev: ", result.rank_metrics.metric,
                               " by rank"))));
  DYLORA_RETURN_IF_ERROR(WriteFileAtomically(
      options.output_dir + "/result.json",
      ResultJson(options, *trainer, result, train.examples.size(),
                 dev.examples.size())));
  return result;
}

}  // namespace dylora
