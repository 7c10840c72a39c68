#include "client/bench_command.h"

#include <ostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/exit_codes.h"
#include "client/json_output.h"
#include "client/load_generator.h"
#include "client/rank_list.h"
#include "nlohmann/json.hpp"

namespace dylora::client {
namespace {

// SST-2-like sentences of varied length, used when no --file is given.
const std::vector<TextItem>& BuiltInTexts() {
  static const auto* const kTexts = new std::vector<TextItem>{
      {"a gripping, beautifully shot film", ""},
      {"the plot is thin and the jokes fall flat", ""},
      {"it 's a charming and often affecting journey .", ""},
      {"unflinchingly bleak and desperate", ""},
      {"an utterly charming and hilarious film that reminded me of the best of "
       "the genre, with performances that stay with you long after the credits",
       ""},
      {"too long , too slow , and too pleased with itself", ""},
      {"a masterpiece", ""},
      {"the director 's heart is in the right place , but the script lets him "
       "down "
       "at every turn",
       ""},
  };
  return *kTexts;
}

// A well-mixed index from a request's sequence number (splitmix64), so the
// rank mix is uniform and the same for every run.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string ErrorsLine(const LoadReport& report) {
  if (report.errors.empty()) return "none";
  std::vector<std::string> parts;
  for (const auto& [code, count] : report.errors) {
    parts.push_back(absl::StrCat(absl::StatusCodeToString(code), " ", count));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

int RunBench(const BenchOptions& options, std::istream& in, std::ostream& out,
             std::ostream& err) {
  if (options.adapter.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("--adapter is required"),
                            err);
  }
  if (options.texts_per_request < 1) {
    return ReportUsageError(
        absl::InvalidArgumentError("--texts-per-request must be >= 1"), err);
  }
  if (options.requests < 0 || options.duration_s < 0) {
    return ReportUsageError(
        absl::InvalidArgumentError(
            "--requests and --duration-s cannot be negative"),
        err);
  }
  std::vector<int64_t> ranks;
  if (!options.rank_mix.empty()) {
    absl::StatusOr<std::vector<int64_t>> parsed =
        ParseRankList(options.rank_mix, "--rank-mix");
    if (!parsed.ok()) return ReportUsageError(parsed.status(), err);
    ranks = *std::move(parsed);
  }
  std::vector<TextItem> texts = BuiltInTexts();
  if (!options.file.empty()) {
    absl::StatusOr<std::vector<TextItem>> read =
        ReadTexts({}, options.file, in);
    if (!read.ok()) return ReportUsageError(read.status(), err);
    texts = *std::move(read);
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);

  // One request first: a server that is down or an unknown adapter ends the
  // run before any load with the right exit code.
  const Classifier classifier(**connection, options.protocol);
  {
    RankChoice choice;
    if (!ranks.empty()) choice.rank = ranks.front();
    absl::StatusOr<ClassifyResult> probe =
        classifier.Classify(options.adapter, {texts.front()}, choice);
    if (!probe.ok()) return ReportRpcError(probe.status(), err);
  }

  LoadOptions load;
  load.concurrency = options.concurrency;
  load.max_requests = options.requests;
  load.duration = absl::Seconds(options.duration_s);
  if (options.requests == 0 && options.duration_s == 0)
    load.duration = absl::Seconds(10);
  load.progress_interval = absl::Seconds(options.progress_interval_s);
  load.on_progress = [&err](const LoadProgress& progress) {
    err << absl::StrFormat(
               "\rbench: %d requests (%d failed) in %.0f s, %.1f/s   ",
               progress.completed, progress.failed, progress.elapsed_seconds,
               progress.elapsed_seconds > 0
                   ? progress.completed / progress.elapsed_seconds
                   : 0.0)
        << std::flush;
  };
  const size_t per_request = static_cast<size_t>(options.texts_per_request);
  absl::StatusOr<LoadReport> report = LoadGenerator::Run(
      load, [&](int /*worker*/, int64_t sequence) -> absl::Status {
        std::vector<TextItem> batch;
        batch.reserve(per_request);
        for (size_t i = 0; i < per_request; ++i) {
          batch.push_back(texts[(sequence * per_request + i) % texts.size()]);
        }
        RankChoice choice;
        if (!ranks.empty()) choice.rank = ranks[Mix(sequence) % ranks.size()];
        return classifier.Classify(options.adapter, batch, choice).status();
      });
  if (!report.ok()) return ReportUsageError(report.status(), err);
  err << "\n";

  const LatencySummary latency = report->latency();
  const std::string rank_text =
      ranks.empty() ? "server default" : FormatRankList(ranks);
  if (options.json) {
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [code, count] : report->errors) {
      errors[absl::StatusCodeToString(code)] = {
          {"count", count}, {"first_message", report->first_errors.at(code)}};
    }
    out << DumpJson({{"server", options.connection.server},
                     {"protocol", ProtocolName(options.protocol)},
                     {"adapter", options.adapter},
                     {"concurrency", options.concurrency},
                     {"texts_per_request", options.texts_per_request},
                     {"ranks", rank_text},
                     {"requests", report->requests},
                     {"succeeded", report->succeeded()},
                     {"failed", report->failed()},
                     {"seconds", report->seconds},
                     {"requests_per_second", report->requests_per_second()},
                     {"texts_per_second", report->requests_per_second() *
                                              options.texts_per_request},
                     {"latency_seconds",
                      {{"mean", latency.mean},
                       {"p50", latency.p50},
                       {"p90", latency.p90},
                       {"p99", latency.p99},
                       {"max", latency.max}}},
                     {"errors", std::move(errors)}})
        << "\n";
  } else {
    out << "bench " << options.adapter << " on " << options.connection.server
        << " via " << ProtocolName(options.protocol) << ": "
        << options.concurrency << " workers, " << options.texts_per_request
        << " texts/request, ranks " << rank_text << "\n"
        << absl::StrFormat("requests    %d (%d ok, %d failed) in %.2f s\n",
                           report->requests, report->succeeded(),
                           report->failed(), report->seconds)
        << absl::StrFormat(
               "throughput  %.1f requests/s, %.1f texts/s\n",
               report->requests_per_second(),
               report->requests_per_second() * options.texts_per_request)
        << absl::StrFormat(
               "latency ms  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean "
               "%.2f\n",
               latency.p50 * 1e3, latency.p90 * 1e3, latency.p99 * 1e3,
               latency.max * 1e3, latency.mean * 1e3)
        << "errors      " << ErrorsLine(*report) << "\n";
    for (const auto& [code, message] : report->first_errors) {
      out << "  first " << absl::StatusCodeToString(code) << ": " << message
          << "\n";
    }
  }
  out.flush();
  return report->failed() == 0 ? kExitOk : kExitRequestFailed;
}

}  // namespace dylora::client
