#include "client/adapters_command.h"

#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/exit_codes.h"
#include "client/json_output.h"
#include "client/rank_list.h"
#include "nlohmann/json.hpp"

namespace dylora::client {
namespace {

namespace v1 = ::dylora::v1;

nlohmann::json AdapterJson(const v1::AdapterInfo& info) {
  nlohmann::json json = {
      {"name", info.name()},
      {"version", info.version()},
      {"path", info.path()},
      {"r_min", info.r_min()},
      {"r_max", info.r_max()},
      {"alpha", info.alpha()},
      {"num_labels", info.num_labels()},
      {"target_modules", std::vector<std::string>(info.target_modules().begin(),
                                                  info.target_modules().end())},
      {"merged_ranks", std::vector<int64_t>(info.merged_ranks().begin(),
                                            info.merged_ranks().end())},
      {"base_model_fingerprint", info.base_model_fingerprint()},
      {"load_seconds", info.load_seconds()},
      {"loaded_at_unix_millis", info.loaded_at_unix_millis()}};
  const v1::RankTable& table = info.rank_table();
  if (table.values_size() == 0) {
    json["rank_table"] = nullptr;
    return json;
  }
  nlohmann::json values = nlohmann::json::array();
  for (const v1::RankValue& value : table.values()) {
    values.push_back({{"rank", value.rank()}, {"value", value.value()}});
  }
  json["rank_table"] = {{"metric", table.metric()},
                        {"higher_is_better", table.higher_is_better()},
                        {"tolerance", table.tolerance()},
                        {"values", std::move(values)}};
  json["rank_table"]["best_rank"] = table.has_best_rank()
                                        ? nlohmann::json(table.best_rank())
                                        : nlohmann::json();
  json["rank_table"]["smallest_rank_within_tolerance"] =
      table.has_smallest_rank_within_tolerance()
          ? nlohmann::json(table.smallest_rank_within_tolerance())
          : nlohmann::json();
  return json;
}

}  // namespace

std::string DescribeAdapter(const v1::AdapterInfo& info) {
  std::string text = absl::StrCat(
      info.name(), "  version ", info.version(), "  ranks ", info.r_min(), "-",
      info.r_max(), "  alpha ", info.alpha(), "  ",
      info.num_labels() == 1 ? std::string("regression")
                             : absl::StrCat(info.num_labels(), " labels"),
      "  merged [", absl::StrJoin(info.merged_ranks(), ","), "]\n");
  absl::StrAppend(&text, "  path ", info.path(), "\n");
  const v1::RankTable& table = info.rank_table();
  if (table.values_size() == 0) {
    absl::StrAppend(&text, "  no rank table\n");
    return text;
  }
  absl::StrAppend(
      &text, "  rank table (", table.metric(),
      table.higher_is_better() ? ", higher is better" : ", lower is better",
      ", tolerance ", table.tolerance(), "):\n");
  absl::StrAppendFormat(&text, "    %4s  %10s\n", "rank", table.metric());
  for (const v1::RankValue& value : table.values()) {
    std::vector<std::string> marks;
    if (table.has_best_rank() && table.best_rank() == value.rank()) {
      marks.push_back("best");
    }
    if (table.has_smallest_rank_within_tolerance() &&
        table.smallest_rank_within_tolerance() == value.rank()) {
      marks.push_back("smallest-within-tolerance");
    }
    absl::StrAppendFormat(&text, "    %4d  %10.4f", value.rank(),
                          value.value());
    if (!marks.empty())
      absl::StrAppend(&text, "  <- ", absl::StrJoin(marks, ", "));
    absl::StrAppend(&text, "\n");
  }
  return text;
}

int RunListAdapters(const ListAdaptersOptions& options, std::ostream& out,
                    std::ostream& err) {
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);
  v1::ListAdaptersResponse response;
  grpc::ClientContext context;
  (*connection)->Prepare(context);
  const absl::Status status =
      (*connection)
          ->Check((*connection)->dylora().ListAdapters(&context, {}, &response),
                  "ListAdapters");
  if (!status.ok()) return ReportRpcError(status, err);

  if (options.json) {
    nlohmann::json adapters = nlohmann::json::array();
    for (const v1::AdapterInfo& info : response.adapters()) {
      adapters.push_back(AdapterJson(info));
    }
    out << DumpJson({{"server", options.connection.server},
                     {"adapters", std::move(adapters)}})
        << "\n";
    return kExitOk;
  }
  if (response.adapters_size() == 0) {
    out << "no adapters loaded on " << options.connection.server << "\n";
  }
  for (const v1::AdapterInfo& info : response.adapters())
    out << DescribeAdapter(info);
  out.flush();
  return kExitOk;
}

int RunLoadAdapter(const LoadAdapterOptions& options, std::ostream& out,
                   std::ostream& err) {
  if (options.name.empty() || options.path.empty()) {
    return ReportUsageError(
        absl::InvalidArgumentError("load needs NAME and PATH"), err);
  }
  v1::LoadAdapterRequest request;
  request.set_name(options.name);
  request.set_path(options.path);
  if (!options.prewarm.empty()) {
    absl::StatusOr<std::vector<int64_t>> ranks =
        ParseRankList(options.prewarm, "--prewarm");
    if (!ranks.ok()) return ReportUsageError(ranks.status(), err);
    for (int64_t rank : *ranks) request.add_prewarm_ranks(rank);
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);
  v1::LoadAdapterResponse response;
  grpc::ClientContext context;
  (*connection)->Prepare(context, /*admin=*/true);
  const absl::Status status =
      (*connection)
          ->Check(
              (*connection)->dylora().LoadAdapter(&context, request, &response),
              "LoadAdapter");
  if (!status.ok()) return ReportRpcError(status, err);
  out << (response.replaced() ? "replaced " : "loaded ")
      << response.adapter().name() << " (version "
      << response.adapter().version() << ") from " << response.adapter().path()
      << "\n"
      << DescribeAdapter(response.adapter());
  out.flush();
  return kExitOk;
}

int RunUnloadAdapter(const UnloadAdapterOptions& options, std::ostream& out,
                     std::ostream& err) {
  if (options.name.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("unload needs NAME"),
                            err);
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);
  v1::UnloadAdapterRequest request;
  request.set_name(options.name);
  v1::UnloadAdapterResponse response;
  grpc::ClientContext context;
  (*connection)->Prepare(context, /*admin=*/true);
  const absl::Status status =
      (*connection)
          ->Check((*connection)
                      ->dylora()
                      .UnloadAdapter(&context, request, &response),
                  "UnloadAdapter");
  if (!status.ok()) return ReportRpcError(status, err);
  out << "unloaded " << options.name << "\n";
  out.flush();
  return kExitOk;
}

}  // namespace dylora::client
