#include "core/glue/glue.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

// Where a task's fields live. Files with a header are located by column name
// (robust to the extra columns of MNLI/QQP); CoLA has no header.
struct Layout {
  bool has_header = true;
  std::string text_a, text_b, label;  // header names
  int text_a_index = -1, text_b_index = -1, label_index = -1;  // no header
  bool label_is_last = false;  // MNLI: gold_label is the last column
};

Layout LayoutOf(GlueTask task) {
  switch (task) {
    case GlueTask::kSst2:
      return {.text_a = "sentence", .label = "label"};
    case GlueTask::kCola:
      return {.has_header = false, .text_a_index = 3, .label_index = 1};
    case GlueTask::kMrpc:
      return {.text_a = "#1 String", .text_b = "#2 String", .label = "Quality"};
    case GlueTask::kRte:
      return {.text_a = "sentence1", .text_b = "sentence2", .label = "label"};
    case GlueTask::kQnli:
      return {.text_a = "question", .text_b = "sentence", .label = "label"};
    case GlueTask::kStsb:
      return {.text_a = "sentence1", .text_b = "sentence2", .label = "score"};
    case GlueTask::kMnli:
      return {.text_a = "sentence1", .text_b = "sentence2",
              .label = "gold_label", .label_is_last = true};
    case GlueTask::kQqp:
      return {.text_a = "question1", .text_b = "question2",
              .label = "is_duplicate"};
  }
  return {};
}

const std::vector<GlueTaskSpec>& AllSpecs() {
  using M = GlueMetric;
  static const auto* specs = new std::vector<GlueTaskSpec>{
      {GlueTask::kSst2, "sst2", false, false, {"0", "1"}, {M::kAccuracy}},
      {GlueTask::kCola, "cola", false, false, {"0", "1"}, {M::kMatthews}},
      {GlueTask::kMrpc, "mrpc", true, false, {"0", "1"},
       {M::kAccuracy, M::kF1}},
      {GlueTask::kRte, "rte", true, false,
       {"entailment", "not_entailment"}, {M::kAccuracy}},
      {GlueTask::kQnli, "qnli", true, false,
       {"entailment", "not_entailment"}, {M::kAccuracy}},
      {GlueTask::kStsb, "stsb", true, true, {}, {M::kPearson, M::kSpearman}},
      {GlueTask::kMnli, "mnli", true, false,
       {"entailment", "neutral", "contradiction"}, {M::kAccuracy}},
      {GlueTask::kQqp, "qqp", true, false, {"0", "1"},
       {M::kAccuracy, M::kF1}},
  };
  return *specs;
}

absl::StatusOr<int> ColumnIndex(const std::vector<absl::string_view>& header,
                                const std::string& name,
                                const std::string& path) {
  auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: header has no column '", name, "' (found: ",
                     absl::StrJoin(header, ", "), ")"));
  }
  return static_cast<int>(it - header.begin());
}

}  // namespace

absl::StatusOr<GlueTaskSpec> GlueTaskByName(absl::string_view name) {
  std::string key = absl::AsciiStrToLower(name);
  key.erase(std::remove(key.begin(), key.end(), '-'), key.end());
  for (const GlueTaskSpec& spec : AllSpecs()) {
    if (spec.name == key) return spec;
  }
  std::vector<std::string> names;
  for (const GlueTaskSpec& spec : AllSpecs()) names.push_back(spec.name);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown GLUE task '", name, "' (known: ", absl::StrJoin(names, ", "), ")"));
}

const GlueTaskSpec& GetGlueTaskSpec(GlueTask task) {
  return AllSpecs()[static_cast<size_t>(task)];
}

absl::string_view GlueMetricName(GlueMetric metric) {
  switch (metric) {
    case GlueMetric::kAccuracy: return "accuracy";
    case GlueMetric::kF1: return "f1";
    case GlueMetric::kMatthews: return "matthews";
    case GlueMetric::kPearson: return "pearson";
    case GlueMetric::kSpearman: return "spearman";
  }
  return "unknown";
}

absl::StatusOr<Dataset> ReadGlueTsv(const std::string& path, GlueTask task,
                                    const ReadOptions& options) {
  DYLORA_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(path));
  Dataset dataset;
  dataset.spec = GetGlueTaskSpec(task);
  dataset.path = path;
  const Layout layout = LayoutOf(task);

  absl::string_view text = contents;
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // BOM
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();

  int text_a = layout.text_a_index, text_b = layout.text_b_index,
      label = layout.label_index;
  size_t first_row = 0;
  size_t expected_columns = 0;
  if (layout.has_header) {
    if (lines.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
    }
    absl::string_view header_line = absl::StripSuffix(lines[0], "\r");
    std::vector<absl::string_view> header = absl::StrSplit(header_line, '\t');
    expected_columns = header.size();
    DYLORA_ASSIGN_OR_RETURN(text_a, ColumnIndex(header, layout.text_a, path));
    if (!layout.text_b.empty()) {
      DYLORA_ASSIGN_OR_RETURN(text_b, ColumnIndex(header, layout.text_b, path));
    }
    DYLORA_ASSIGN_OR_RETURN(label, ColumnIndex(header, layout.label, path));
    first_row = 1;
  }
  const int max_index = std::max({text_a, text_b, label});

  auto parse_row = [&](absl::string_view line,
                       Example& example) -> absl::Status {
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    if (expected_columns > 0 && fields.size() != expected_columns &&
        !layout.label_is_last) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected ", expected_columns, " tab-separated columns, found ",
          fields.size()));
    }
    if (static_cast<int>(fields.size()) <= max_index) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected at least ", max_index + 1, " columns, found ",
          fields.size()));
    }
    example.text_a = std::string(fields[text_a]);
    if (text_b >= 0) example.text_b = std::string(fields[text_b]);
    if (example.text_a.empty() || (text_b >= 0 && example.text_b->empty())) {
      return absl::InvalidArgumentError("empty text");
    }
    absl::string_view label_field =
        layout.label_is_last ? fields.back() : fields[label];
    label_field = absl::StripAsciiWhitespace(label_field);
    const GlueTaskSpec& spec = dataset.spec;
    if (spec.regression) {
      float score = 0;
      if (!absl::SimpleAtof(label_field, &score) || !std::isfinite(score)) {
        return absl::InvalidArgumentError(
            absl::StrCat("score '", label_field, "' is not a number"));
      }
      example.label = score;
      return absl::OkStatus();
    }
    auto it = std::find(spec.labels.begin(), spec.labels.end(), label_field);
    if (it == spec.labels.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label '", label_field, "' is not one of ",
          absl::StrJoin(spec.labels, ", ")));
    }
    example.label = static_cast<float>(it - spec.labels.begin());
    return absl::OkStatus();
  };

  for (size_t i = first_row; i < lines.size(); ++i) {
    if (options.max_examples >= 0 &&
        static_cast<int64_t>(dataset.examples.size()) >= options.max_examples) {
      break;
    }
    absl::string_view line = absl::StripSuffix(lines[i], "\r");
    Example example;
    example.line = static_cast<int64_t>(i) + 1;
    absl::Status status = parse_row(line, example);
    if (status.ok()) {
      dataset.examples.push_back(std::move(example));
      continue;
    }
    std::string where = absl::StrCat(path, ":", i + 1, ": ", status.message());
    if (!options.skip_bad_rows) return absl::InvalidArgumentError(where);
    ++dataset.skipped_rows;
    if (dataset.skipped_reasons.size() < 10) {
      dataset.skipped_reasons.push_back(std::move(where));
    }
  }
  if (dataset.examples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no usable examples"));
  }
  return dataset;
}

}  // namespace dylora
