#include "client/sweep_command.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/exit_codes.h"
#include "client/json_output.h"
#include "client/latency_stats.h"
#include "client/rank_list.h"
#include "nlohmann/json.hpp"
#include "core/glue/glue.h"
#include "core/glue/metrics.h"

namespace dylora::client {
namespace {

namespace v1 = ::dylora::v1;

// One rank's outcome.
struct RankRow {
  int64_t rank = 0;
  std::vector<double> metrics;    // in the task's metric order
  std::optional<double> offline;  // the adapter's rank table, when present
  int64_t requests = 0;
  LatencySummary latency;
  double rows_per_second = 0;
};

std::optional<double> OfflineValue(const v1::RankTable& table, int64_t rank) {
  for (const v1::RankValue& value : table.values()) {
    if (value.rank() == rank) return value.value();
  }
  return std::nullopt;
}

std::vector<TextItem> ItemsOf(const Dataset& dataset) {
  std::vector<TextItem> items;
  items.reserve(dataset.examples.size());
  for (const Example& example : dataset.examples) {
    items.push_back({example.text_a, example.text_b.value_or("")});
  }
  return items;
}

std::string Cell(const std::optional<double>& value) {
  return value.has_value() ? absl::StrFormat("%.4f", *value) : "-";
}

void PrintTable(const std::vector<std::string>& metric_names,
                const std::string& offline_name,
                const std::vector<RankRow>& rows, std::ostream& out) {
  std::vector<std::string> header = {"rank", metric_names[0]};
  if (!offline_name.empty()) header.push_back("offline " + offline_name);
  for (size_t m = 1; m < metric_names.size(); ++m)
    header.push_back(metric_names[m]);
  for (const char* name : {"mean ms", "p99 ms", "rows/s"})
    header.push_back(name);

  std::vector<std::vector<std::string>> lines = {header};
  for (const RankRow& row : rows) {
    std::vector<std::string> line = {absl::StrCat(row.rank),
                                     Cell(row.metrics[0])};
    if (!offline_name.empty()) line.push_back(Cell(row.offline));
    for (size_t m = 1; m < row.metrics.size(); ++m)
      line.push_back(Cell(row.metrics[m]));
    line.push_back(absl::StrFormat("%.2f", row.latency.mean * 1e3));
    line.push_back(absl::StrFormat("%.2f", row.latency.p99 * 1e3));
    line.push_back(absl::StrFormat("%.1f", row.rows_per_second));
    lines.push_back(std::move(line));
  }
  std::vector<size_t> widths(header.size(), 0);
  for (const auto& line : lines) {
    for (size_t c = 0; c < line.size(); ++c)
      widths[c] = std::max(widths[c], line[c].size());
  }
  for (const auto& line : lines) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      absl::StrAppend(
          &text, c == 0 ? "" : "  ",
          absl::StrFormat("%*s", static_cast<int>(widths[c]), line[c]));
    }
    out << text << "\n";
  }
}

void PrintCsv(const std::vector<std::string>& metric_names,
              const std::string& offline_name, const std::vector<RankRow>& rows,
              std::ostream& out) {
  std::vector<std::string> header = {"rank"};
  header.insert(header.end(), metric_names.begin(), metric_names.end());
  header.push_back(offline_name.empty() ? "offline"
                                        : "offline_" + offline_name);
  for (const char* name :
       {"requests", "mean_latency_ms", "p99_latency_ms", "rows_per_second"}) {
    header.push_back(name);
  }
  out << absl::StrJoin(header, ",") << "\n";
  for (const RankRow& row : rows) {
    std::vector<std::string> cells = {absl::StrCat(row.rank)};
    for (double value : row.metrics)
      cells.push_back(absl::StrFormat("%.6f", value));
    cells.push_back(
        row.offline.has_value() ? absl::StrFormat("%.6f", *row.offline) : "");
    cells.push_back(absl::StrCat(row.requests));
    cells.push_back(absl::StrFormat("%.3f", row.latency.mean * 1e3));
    cells.push_back(absl::StrFormat("%.3f", row.latency.p99 * 1e3));
    cells.push_back(absl::StrFormat("%.2f", row.rows_per_second));
    out << absl::StrJoin(cells, ",") << "\n";
  }
}

}  // namespace

absl::StatusOr<std::string> DefaultGlueDevFile(const std::string& data_dir,
                                               const std::string& task) {
  absl::StatusOr<GlueTaskSpec> spec = GlueTaskByName(task);
  if (!spec.ok()) return spec.status();
  static const auto* const kFolders = new std::map<std::string, std::string>{
      {"sst2", "SST-2"}, {"cola", "CoLA"},  {"mrpc", "MRPC"}, {"rte", "RTE"},
      {"qnli", "QNLI"},  {"stsb", "STS-B"}, {"mnli", "MNLI"}, {"qqp", "QQP"}};
  const auto folder = kFolders->find(spec->name);
  if (folder == kFolders->end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no GLUE folder for task ", task));
  }
  return absl::StrCat(data_dir, "/", folder->second,
                      spec->name == "mnli" ? "/dev_matched.tsv" : "/dev.tsv");
}

int RunSweep(const SweepOptions& options, std::ostream& out,
             std::ostream& err) {
  if (options.adapter.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("--adapter is required"),
                            err);
  }
  if (options.task.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("--task is required"),
                            err);
  }
  if (options.batch < 1) {
    return ReportUsageError(absl::InvalidArgumentError("--batch must be >= 1"),
                            err);
  }
  if (options.limit == 0 || options.limit < -1) {
    return ReportUsageError(absl::InvalidArgumentError("--limit must be >= 1"),
                            err);
  }
  absl::StatusOr<GlueTaskSpec> spec = GlueTaskByName(options.task);
  if (!spec.ok()) return ReportUsageError(spec.status(), err);
  std::string data_file = options.data_file;
  if (data_file.empty()) {
    absl::StatusOr<std::string> path =
        DefaultGlueDevFile(options.data_dir, options.task);
    if (!path.ok()) return ReportUsageError(path.status(), err);
    data_file = *path;
  }
  ReadOptions read_options;
  read_options.max_examples = options.limit;
  absl::StatusOr<Dataset> dataset =
      ReadGlueTsv(data_file, spec->task, read_options);
  if (!dataset.ok()) return ReportUsageError(dataset.status(), err);
  if (dataset->examples.empty()) {
    return ReportUsageError(absl::InvalidArgumentError(
                                absl::StrCat(data_file, " holds no examples")),
                            err);
  }
  std::vector<int64_t> ranks;
  if (!options.ranks.empty()) {
    absl::StatusOr<std::vector<int64_t>> parsed =
        ParseRankList(options.ranks, "--ranks");
    if (!parsed.ok()) return ReportUsageError(parsed.status(), err);
    ranks = *std::move(parsed);
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);

  // The adapter's range and stored rank table.
  v1::AdapterInfo info;
  {
    v1::GetAdapterRequest request;
    request.set_name(options.adapter);
    grpc::ClientContext context;
    (*connection)->Prepare(context);
    const absl::Status status =
        (*connection)
            ->Check(
                (*connection)->dylora().GetAdapter(&context, request, &info),
                "GetAdapter");
    if (!status.ok()) return ReportRpcError(status, err);
  }
  if ((info.num_labels() == 1) != spec->regression) {
    return ReportUsageError(
        absl::InvalidArgumentError(absl::StrCat(
            "adapter ", options.adapter, " is a ",
            info.num_labels() == 1 ? "regression" : "classification",
            " adapter but task ", spec->name, " is ",
            spec->regression ? "regression" : "classification")),
        err);
  }
  if (!spec->regression && info.num_labels() != spec->num_labels()) {
    err << "warning: adapter " << options.adapter << " has "
        << info.num_labels() << " labels, task " << spec->name << " has "
        << spec->num_labels() << "\n";
  }
  if (ranks.empty()) {
    for (int64_t rank = info.r_min(); rank <= info.r_max(); ++rank)
      ranks.push_back(rank);
  }

  std::vector<std::string> metric_names;
  for (GlueMetric metric : spec->metrics) {
    metric_names.emplace_back(GlueMetricName(metric));
  }
  const std::string offline_name =
      info.rank_table().values_size() > 0 ? info.rank_table().metric() : "";
  std::vector<double> labels;
  for (const Example& example : dataset->examples)
    labels.push_back(example.label);
  const std::vector<TextItem> items = ItemsOf(*dataset);
  const Classifier classifier(**connection, options.protocol);

  std::vector<RankRow> rows;
  for (size_t r = 0; r < ranks.size(); ++r) {
    RankRow row;
    row.rank = ranks[r];
    RankChoice choice;
    choice.rank = row.rank;
    std::vector<double> predicted;
    std::vector<double> latencies;
    const absl::Time start = absl::Now();
    for (size_t first = 0; first < items.size(); first += options.batch) {
      const size_t count =
          std::min<size_t>(options.batch, items.size() - first);
      const std::vector<TextItem> chunk(items.begin() + first,
                                        items.begin() + first + count);
      absl::StatusOr<ClassifyResult> result =
          classifier.Classify(options.adapter, chunk, choice);
      if (!result.ok()) {
        err << "\n";
        return ReportRpcError(result.status(), err);
      }
      latencies.push_back(result->client_seconds);
      for (const Prediction& prediction : result->predictions) {
        predicted.push_back(result->regression
                                ? prediction.value
                                : static_cast<double>(prediction.label));
      }
      err << "\rsweep " << options.adapter << " on " << spec->name << ": rank "
          << row.rank << " (" << r + 1 << "/" << ranks.size() << "), "
          << first + count << "/" << items.size() << " rows   " << std::flush;
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    for (GlueMetric metric : spec->metrics) {
      absl::StatusOr<double> value =
          ComputeGlueMetric(metric, predicted, labels);
      row.metrics.push_back(value.ok() ? *value : std::nan(""));
    }
    row.offline = OfflineValue(info.rank_table(), row.rank);
    row.requests = static_cast<int64_t>(latencies.size());
    row.latency = Summarize(std::move(latencies));
    row.rows_per_second =
        seconds > 0 ? static_cast<double>(items.size()) / seconds : 0;
    rows.push_back(std::move(row));
  }
  err << "\n";

  switch (options.format) {
    case OutputFormat::kJson: {
      nlohmann::json rank_rows = nlohmann::json::array();
      for (const RankRow& row : rows) {
        nlohmann::json metrics = nlohmann::json::object();
        for (size_t m = 0; m < metric_names.size(); ++m) {
          metrics[metric_names[m]] = row.metrics[m];
        }
        rank_rows.push_back(
            {{"rank", row.rank},
             {"metrics", std::move(metrics)},
             {"offline", row.offline.has_value() ? nlohmann::json(*row.offline)
                                                 : nlohmann::json()},
             {"requests", row.requests},
             {"mean_latency_seconds", row.latency.mean},
             {"p99_latency_seconds", row.latency.p99},
             {"rows_per_second", row.rows_per_second}});
      }
      out << DumpJson({{"server", options.connection.server},
                       {"protocol", ProtocolName(options.protocol)},
                       {"adapter", options.adapter},
                       {"adapter_version", info.version()},
                       {"task", spec->name},
                       {"data", data_file},
                       {"rows", items.size()},
                       {"batch", options.batch},
                       {"primary_metric", metric_names[0]},
                       {"offline_metric", offline_name},
                       {"ranks", std::move(rank_rows)}})
          << "\n";
      break;
    }
    case OutputFormat::kCsv:
      PrintCsv(metric_names, offline_name, rows, out);
      break;
    case OutputFormat::kTable:
      out << "# adapter " << options.adapter << " v" << info.version()
          << " (ranks " << info.r_min() << "-" << info.r_max() << ") on "
          << options.connection.server << " via "
          << ProtocolName(options.protocol) << "; task " << spec->name << ", "
          << items.size() << " rows of " << data_file << ", " << options.batch
          << " rows per request\n";
      PrintTable(metric_names, offline_name, rows, out);
      break;
  }
  out.flush();
  return kExitOk;
}

}  // namespace dylora::client
