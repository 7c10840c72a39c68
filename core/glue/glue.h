// Readers for the GLUE task files (the original TSV layouts, read literally:
// tabs separate fields, no CSV quoting). A malformed row stops reading with
// "<file>:<line>: <reason>" unless the caller asks to skip bad rows, in which
// case they are counted and the first few reasons kept for the report.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora {

enum class GlueTask { kSst2, kCola, kMrpc, kRte, kQnli, kStsb, kMnli, kQqp };

enum class GlueMetric { kAccuracy, kF1, kMatthews, kPearson, kSpearman };

struct GlueTaskSpec {
  GlueTask task;
  std::string name;        // "sst2", "cola", ...
  bool is_pair = false;    // two texts per example
  bool regression = false; // STS-B: a score in [0, 5]
  // Label names in id order (classification). Numeric-label tasks use "0","1".
  std::vector<std::string> labels;
  // The task's GLUE metrics; the first is the one ranks are compared on.
  std::vector<GlueMetric> metrics;
  int64_t num_labels() const { return regression ? 1 : labels.size(); }
};

// "sst2" / "SST-2" / "sst-2" -> spec (case-insensitive, '-' optional).
absl::StatusOr<GlueTaskSpec> GlueTaskByName(absl::string_view name);
const GlueTaskSpec& GetGlueTaskSpec(GlueTask task);
absl::string_view GlueMetricName(GlueMetric metric);

struct Example {
  std::string text_a;
  std::optional<std::string> text_b;
  // Class id for classification, the score for regression.
  float label = 0;
  int64_t line = 0;  // 1-based line in the source file
};

struct ReadOptions {
  bool skip_bad_rows = false;
  int64_t max_examples = -1;  // -1: all
};

struct Dataset {
  GlueTaskSpec spec;
  std::string path;
  std::vector<Example> examples;
  int64_t skipped_rows = 0;
  std::vector<std::string> skipped_reasons;  // the first 10
};

// Reads a labelled GLUE split (train.tsv / dev.tsv) of `task`.
absl::StatusOr<Dataset> ReadGlueTsv(const std::string& path, GlueTask task,
                                    const ReadOptions& options = {});

}  // namespace dylora
