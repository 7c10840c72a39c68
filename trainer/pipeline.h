// dylora-train's whole job as a library call (the CLI only parses flags):
// load the frozen backbone and tokenizer, read and tokenize the GLUE task,
// train (resuming from the newest checkpoint when asked), evaluate every
// rank on the dev set, and write the adapter with its rank table and reports.
//
// Output directory layout:
//   adapter_config.json, adapter_model.safetensors   the adapter (PEFT layout,
//                                                    rank table in "dylora")
//   rank_table.csv / rank_table.json / rank_table.svg
//   result.json                                      the run's settings, times
//                                                    and every metric per rank
//                                                    (format "dylora-run/1")
//   checkpoints/step-<N>/                            the newest checkpoint
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/report/rank_report.h"
#include "trainer/training/trainer.h"

namespace dylora {

struct PipelineOptions {
  std::string model_dir;
  std::string task = "sst2";
  std::string train_file;  // GLUE train.tsv
  std::string dev_file;    // GLUE dev.tsv
  std::string output_dir;
  bool overwrite = false;
  bool resume = false;
  bool skip_bad_rows = false;
  int64_t max_seq_len = 128;
  int64_t max_train_examples = -1;
  int64_t max_dev_examples = -1;
  int64_t eval_batch_size = 64;
  int64_t eval_every = 0;        // steps; 0: only at the end
  int64_t checkpoint_every = 0;  // steps; 0: no checkpoints
  double tolerance = 0.01;       // for the recommended smallest rank
  // The task head: "auto" reads the pooling the checkpoint declares
  // (sentence-transformers modules.json) and falls back to the family's
  // Hugging Face head; or a HeadKindName ("mean", "pooler", ...).
  std::string head = "auto";
  // Another adapter directory (e.g. a LoRA run) whose rank table is drawn
  // beside this one in the plot.
  std::string compare_adapter_dir;
  TrainerOptions trainer;
};

struct PipelineResult {
  RankMetrics rank_metrics;
  std::vector<RankSeries> series;  // this run first, then the comparison
  int64_t steps = 0;
  double train_seconds = 0;
  double eval_seconds = 0;
  // Every GLUE metric of the task per evaluated rank (MRPC: accuracy and
  // F1; STS-B: Pearson and Spearman), in rank order.
  std::vector<std::pair<int64_t, std::vector<std::pair<std::string, double>>>>
      all_metrics;
  std::string table_text;
};

// Progress events for the CLI's progress line and logs.
struct PipelineCallbacks {
  std::function<void(const std::string&)> on_message;
  std::function<void(const StepReport&, double elapsed_seconds)> on_step;
};

absl::StatusOr<PipelineResult> RunTrainingPipeline(
    const PipelineOptions& options, const PipelineCallbacks& callbacks = {});

}  // namespace dylora
