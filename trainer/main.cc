// dylora-train: trains a DyLoRA adapter (or a LoRA / nested-dropout
// baseline) on a GLUE task over a frozen backbone, evaluates every rank and
// writes the adapter with its rank table. Flags only; see --help.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "trainer/pipeline.h"

namespace {

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

// One self-overwriting line on stderr: bar, steps, loss, lr, rank, ETA.
void PrintProgress(const dylora::StepReport& r, double elapsed) {
  constexpr int kWidth = 24;
  const double fraction =
      r.total_steps > 0 ? static_cast<double>(r.step) / r.total_steps : 1.0;
  const int filled = static_cast<int>(fraction * kWidth);
  const double eta =
      r.step > 0 ? elapsed / r.step * (r.total_steps - r.step) : 0;
  std::fprintf(
      stderr, "\r[%s%s] %lld/%lld loss %.4f lr %.2e rank %s | %s, ETA %s   ",
      std::string(filled, '#').c_str(),
      std::string(kWidth - filled, '.').c_str(), static_cast<long long>(r.step),
      static_cast<long long>(r.total_steps), r.loss, r.learning_rate,
      r.rank > 0 ? std::to_string(r.rank).c_str() : "all",
      FormatDuration(elapsed).c_str(), FormatDuration(eta).c_str());
  if (r.step == r.total_steps) std::fprintf(stderr, "\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dylora;
  CLI::App app{
      "dylora-train: train a DyLoRA adapter on a GLUE task and "
      "evaluate every rank"};
  PipelineOptions options;
  options.model_dir = DYLORA_DEFAULT_MODEL_DIR;
  std::string data_dir = DYLORA_DEFAULT_DATA_DIR;
  // The sweep's choices (docs/reproduction.md): every linear layer, full
  // update (frozen is the paper's mode, and --update-mode frozen), rank 1
  // drawn about twice as often as rank 8 (geometric 0.1; the paper's
  // default is uniform).
  std::string method = "dylora", distribution = "geometric:0.1",
              update = "full";
  std::string targets = "query,key,value,attention.output,intermediate,output";
  int threads = 0;
  // Negative: the rate the backbone's config.json declares.
  double hidden_dropout = -1, attention_dropout = -1, classifier_dropout = -1;
  TrainerOptions& t = options.trainer;
  AdapterConfig& a = t.adapter;

  app.add_option("--model", options.model_dir,
                 "backbone directory (config.json, model.safetensors, "
                 "tokenizer.json)")
      ->capture_default_str();
  app.add_option("--task", options.task,
                 "GLUE task: sst2, cola, mrpc, rte, qnli, stsb, mnli, qqp")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir,
                 "GLUE root holding <TASK>/train.tsv and dev.tsv")
      ->capture_default_str();
  app.add_option("--train-file", options.train_file,
                 "train.tsv (overrides --data-dir)");
  app.add_option("--dev-file", options.dev_file,
                 "dev.tsv (overrides --data-dir)");
  app.add_option("--output,-o", options.output_dir, "output directory")
      ->required();
  app.add_flag("--overwrite", options.overwrite, "replace an existing adapter");
  app.add_flag("--resume", options.resume,
               "continue from the newest checkpoint in the output directory");
  app.add_flag("--skip-bad-rows", options.skip_bad_rows,
               "skip (and count) malformed rows instead of stopping");
  app.add_option("--method", method, "dylora, lora, nested-dropout or full")
      ->capture_default_str();
  app.add_option("--r-min", a.r_min, "smallest rank")->capture_default_str();
  app.add_option("--r-max", a.r_max, "largest rank (LoRA: its rank)")
      ->capture_default_str();
  app.add_option("--alpha", a.alpha, "scale numerator: updates use alpha/b")
      ->capture_default_str();
  app.add_option("--rank-distribution", distribution,
                 "p_B: uniform or geometric:<p>")
      ->capture_default_str();
  app.add_option("--update-mode", update, "frozen (row/column b only) or full")
      ->capture_default_str();
  app.add_option("--targets", targets,
                 "adapted modules: query,key,value,attention.output,"
                 "intermediate,output")
      ->capture_default_str();
  app.add_option("--lr", t.learning_rate,
                 "peak learning rate (DyLoRA: the adapter's rate at r_max)")
      ->capture_default_str();
  app.add_option("--up-lr-ratio", t.up_lr_ratio,
                 "LoRA+: learning rate of the up factors (lora_B) relative to "
                 "--lr (1: the same)")
      ->capture_default_str();
  app.add_option("--rank-lr-exponent", t.rank_lr_exponent,
                 "DyLoRA: a step at rank b trains the adapter at "
                 "(b/r_max)^exponent times --lr (0: the same at every rank)")
      ->capture_default_str();
  app.add_option("--head-lr", t.head_learning_rate,
                 "peak learning rate of the task head (0: --lr)")
      ->capture_default_str();
  app.add_option("--head", options.head,
                 "task head: auto (the pooling the checkpoint declares, else "
                 "the family's HF head), mean, cls, max, mean_sqrt_len, "
                 "pooler or roberta")
      ->capture_default_str();
  app.add_option("--hidden-dropout", hidden_dropout,
                 "training dropout on hidden states (-1: config.json's "
                 "hidden_dropout_prob)")
      ->capture_default_str();
  app.add_option("--attention-dropout", attention_dropout,
                 "training dropout on attention probabilities (-1: "
                 "config.json's attention_probs_dropout_prob)")
      ->capture_default_str();
  app.add_option("--classifier-dropout", classifier_dropout,
                 "training dropout before the head (-1: config.json's "
                 "classifier_dropout, else the hidden rate)")
      ->capture_default_str();
  app.add_option("--weight-decay", t.weight_decay, "AdamW weight decay")
      ->capture_default_str();
  app.add_option("--warmup-ratio", t.warmup_ratio,
                 "linear warm-up share of steps")
      ->capture_default_str();
  app.add_option("--max-grad-norm", t.max_grad_norm,
                 "gradient clipping (0: off)")
      ->capture_default_str();
  app.add_option("--batch-size", t.batch_size, "examples per micro-batch")
      ->capture_default_str();
  app.add_flag("--group-by-length,!--no-group-by-length", t.group_by_length,
               "batches of similar lengths (less padding)")
      ->capture_default_str();
  app.add_option("--grad-accum", t.grad_accumulation,
                 "micro-batches per optimizer step (same rank for all)")
      ->capture_default_str();
  app.add_option("--epochs", t.epochs, "epochs (ignored with --max-steps)")
      ->capture_default_str();
  app.add_option("--max-steps", t.max_steps,
                 "optimizer steps (overrides --epochs)");
  app.add_option("--seed", t.seed, "seed for init, data order and ranks")
      ->capture_default_str();
  app.add_option("--max-seq-len", options.max_seq_len, "tokens per example")
      ->capture_default_str();
  app.add_option("--max-train-examples", options.max_train_examples,
                 "use only the first N training rows");
  app.add_option("--max-dev-examples", options.max_dev_examples,
                 "use only the first N dev rows");
  app.add_option("--eval-batch-size", options.eval_batch_size)
      ->capture_default_str();
  app.add_option("--eval-every", options.eval_every,
                 "dev evaluation at r_min and r_max every N steps (0: off)");
  app.add_option("--checkpoint-every", options.checkpoint_every,
                 "checkpoint every N steps (0: off)");
  app.add_option("--tolerance", options.tolerance,
                 "metric tolerance for the smallest recommended rank")
      ->capture_default_str();
  app.add_option("--compare", options.compare_adapter_dir,
                 "another adapter (e.g. a LoRA run) to plot beside this one");
  app.add_option("--threads", threads, "intra-op threads (0: all cores)");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const absl::Status& status) {
    spdlog::error("{}", std::string(status.message()));
    return 1;
  };
  auto parsed_method = ParseTrainMethod(method);
  if (!parsed_method.ok()) return fail(parsed_method.status());
  t.method = *parsed_method;
  auto parsed_distribution = RankDistribution::Parse(distribution);
  if (!parsed_distribution.ok()) return fail(parsed_distribution.status());
  a.rank_distribution = *parsed_distribution;
  auto parsed_update = ParseUpdateMode(update);
  if (!parsed_update.ok()) return fail(parsed_update.status());
  a.update_mode = *parsed_update;
  a.target_kinds.clear();
  for (absl::string_view name :
       absl::StrSplit(targets, ',', absl::SkipEmpty())) {
    auto kind = ParseLinearKind(name);
    if (!kind.ok()) return fail(kind.status());
    a.target_kinds.push_back(*kind);
  }
  a.base_model_name_or_path = options.model_dir;
  if (hidden_dropout >= 0) t.hidden_dropout = hidden_dropout;
  if (attention_dropout >= 0) t.attention_dropout = attention_dropout;
  if (classifier_dropout >= 0) t.classifier_dropout = classifier_dropout;
  auto spec = GlueTaskByName(options.task);
  if (!spec.ok()) return fail(spec.status());
  static const std::map<std::string, std::string> kFolders = {
      {"sst2", "SST-2"}, {"cola", "CoLA"},  {"mrpc", "MRPC"}, {"rte", "RTE"},
      {"qnli", "QNLI"},  {"stsb", "STS-B"}, {"mnli", "MNLI"}, {"qqp", "QQP"}};
  const std::string folder = data_dir + "/" + kFolders.at(spec->name);
  if (options.train_file.empty()) options.train_file = folder + "/train.tsv";
  if (options.dev_file.empty()) {
    options.dev_file =
        folder + (spec->name == "mnli" ? "/dev_matched.tsv" : "/dev.tsv");
  }
  if (threads > 0) at::set_num_threads(threads);
  spdlog::info("intra-op threads: {}", at::get_num_threads());

  PipelineCallbacks callbacks;
  callbacks.on_message = [](const std::string& m) { spdlog::info("{}", m); };
  callbacks.on_step = PrintProgress;
  auto result = RunTrainingPipeline(options, callbacks);
  if (!result.ok()) {
    std::fprintf(stderr, "\n");
    return fail(result.status());
  }
  std::printf("\n%s\n", result->table_text.c_str());
  std::printf("trained %lld steps in %s; evaluated %zu ranks in %s\n",
              static_cast<long long>(result->steps),
              FormatDuration(result->train_seconds).c_str(),
              result->rank_metrics.values.size(),
              FormatDuration(result->eval_seconds).c_str());
  std::printf("adapter and reports in %s\n", options.output_dir.c_str());
  return 0;
}
