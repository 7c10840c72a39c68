#include "client/infer_command.h"

#include <algorithm>
#include <istream>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/exit_codes.h"
#include "client/json_output.h"
#include "nlohmann/json.hpp"

namespace dylora::client {
namespace {

std::string Milliseconds(double seconds) {
  return absl::StrFormat("%.2f ms", seconds * 1e3);
}

std::string RequestHeader(const InferOptions& options,
                          const ClassifyResult& result, size_t texts) {
  std::string header =
      absl::StrCat("# adapter ", options.adapter, " v", result.adapter_version,
                   " | rank ", result.rank, " (", result.rank_source, ") | ",
                   result.execution_path, " | ");
  if (result.timings.has_value()) {
    const ServerTimings& t = *result.timings;
    absl::StrAppend(&header, "server ", Milliseconds(t.total_seconds),
                    " (queue ", Milliseconds(t.queue_seconds), ", compute ",
                    Milliseconds(t.compute_seconds), ", batch ", t.batch_size,
                    ") | ");
  } else {
    absl::StrAppend(&header, "server timings n/a | ");
  }
  absl::StrAppend(&header, "round trip ", Milliseconds(result.client_seconds),
                  " | ", texts, texts == 1 ? " text" : " texts", " | ",
                  ProtocolName(options.protocol));
  return header;
}

std::string PredictionLine(const Prediction& prediction, bool regression,
                           const TextItem& item) {
  std::string line;
  if (regression) {
    line = absl::StrFormat("value %.4f", prediction.value);
  } else {
    line = absl::StrCat(
        prediction.label, "\t",
        absl::StrJoin(prediction.scores, " ", [](std::string* out, float s) {
          absl::StrAppendFormat(out, "%.4f", s);
        }));
  }
  absl::StrAppend(&line, "\t", item.text);
  if (!item.text_pair.empty())
    absl::StrAppend(&line, " [SEP] ", item.text_pair);
  return line;
}

nlohmann::json RequestJson(const ClassifyResult& result, size_t first,
                           size_t count) {
  nlohmann::json request = {{"first", first},
                            {"texts", count},
                            {"adapter_version", result.adapter_version},
                            {"rank", result.rank},
                            {"rank_source", result.rank_source},
                            {"execution_path", result.execution_path},
                            {"client_seconds", result.client_seconds}};
  if (result.timings.has_value()) {
    request["server_timings"] = {
        {"queue_seconds", result.timings->queue_seconds},
        {"compute_seconds", result.timings->compute_seconds},
        {"total_seconds", result.timings->total_seconds},
        {"batch_size", result.timings->batch_size}};
  } else {
    request["server_timings"] = nullptr;
  }
  return request;
}

nlohmann::json PredictionJson(const Prediction& prediction,
                              const ClassifyResult& result,
                              const TextItem& item, size_t request_index) {
  nlohmann::json json = {{"text", item.text}};
  if (!item.text_pair.empty()) json["text_pair"] = item.text_pair;
  if (result.regression) {
    json["value"] = prediction.value;
  } else {
    json["label"] = prediction.label;
    json["scores"] = prediction.scores;
  }
  json["logits"] = prediction.logits;
  json["rank"] = result.rank;
  json["request"] = request_index;
  return json;
}

}  // namespace

int RunInfer(const InferOptions& options, std::istream& in, std::ostream& out,
             std::ostream& err) {
  if (options.adapter.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("--adapter is required"),
                            err);
  }
  if (options.batch < 0) {
    return ReportUsageError(absl::InvalidArgumentError("--batch must be >= 1"),
                            err);
  }
  if (absl::Status valid = ValidateRankChoice(options.rank); !valid.ok()) {
    return ReportUsageError(valid, err);
  }
  absl::StatusOr<std::vector<TextItem>> texts =
      ReadTexts(options.texts, options.file, in);
  if (!texts.ok()) return ReportUsageError(texts.status(), err);
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);

  const Classifier classifier(**connection, options.protocol);
  const size_t batch =
      options.batch > 0 ? options.batch : kDefaultMaxTextsPerRequest;
  nlohmann::json requests = nlohmann::json::array();
  nlohmann::json predictions = nlohmann::json::array();
  for (size_t first = 0, index = 0; first < texts->size();
       first += batch, ++index) {
    const size_t count = std::min(batch, texts->size() - first);
    const std::vector<TextItem> chunk(texts->begin() + first,
                                      texts->begin() + first + count);
    absl::StatusOr<ClassifyResult> result =
        classifier.Classify(options.adapter, chunk, options.rank);
    if (!result.ok()) return ReportRpcError(result.status(), err);
    if (options.json) {
      requests.push_back(RequestJson(*result, first, count));
      for (size_t i = 0; i < count; ++i) {
        predictions.push_back(
            PredictionJson(result->predictions[i], *result, chunk[i], index));
      }
      continue;
    }
    out << RequestHeader(options, *result, count) << "\n";
    for (size_t i = 0; i < count; ++i) {
      out << PredictionLine(result->predictions[i], result->regression,
                            chunk[i])
          << "\n";
    }
  }
  if (options.json) {
    const nlohmann::json document = {
        {"server", options.connection.server},
        {"protocol", ProtocolName(options.protocol)},
        {"adapter", options.adapter},
        {"requests", std::move(requests)},
        {"predictions", std::move(predictions)}};
    out << DumpJson(document) << "\n";
  }
  out.flush();
  return kExitOk;
}

}  // namespace dylora::client
