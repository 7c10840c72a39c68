#include "client/export_command.h"

#include <ostream>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "core/util/file_util.h"
#include "nlohmann/json.hpp"

namespace dylora::client {
namespace {

// The files an export holds, and nothing else: the server's answer is
// untrusted, so a name that could leave the output directory never reaches
// the file system.
const std::set<std::string>& ExpectedFiles() {
  static const std::set<std::string> files = {"adapter_config.json",
                                              "adapter_model.safetensors"};
  return files;
}

absl::Status CheckFiles(const v1::ExportAdapterResponse& response,
                        absl::string_view server) {
  std::set<std::string> seen;
  for (const v1::AdapterFile& file : response.files()) {
    if (!ExpectedFiles().contains(file.name()) ||
        !seen.insert(file.name()).second) {
      return absl::DataLossError(absl::StrCat(
          server,
          " answered ExportAdapter with an unexpected or repeated file \"",
          file.name(), "\""));
    }
  }
  if (seen.size() != ExpectedFiles().size()) {
    return absl::DataLossError(absl::StrCat(
        server, " answered ExportAdapter without both adapter files"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunExport(const ExportOptions& options, std::ostream& out,
              std::ostream& err) {
  if (options.output_dir.empty()) {
    return ReportUsageError(
        absl::InvalidArgumentError("export needs --output DIR"), err);
  }
  if (absl::Status valid = ValidateRankChoice(options.rank); !valid.ok()) {
    return ReportUsageError(valid, err);
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(options.connection);
  if (!connection.ok()) return ReportUsageError(connection.status(), err);

  v1::ExportAdapterRequest request;
  request.set_name(options.adapter);
  SetRankSelector(options.rank, request);
  v1::ExportAdapterResponse response;
  grpc::ClientContext context;
  (*connection)->PrepareInference(context, options.adapter);
  absl::Status status =
      (*connection)
          ->Check((*connection)
                      ->dylora()
                      .ExportAdapter(&context, request, &response),
                  "ExportAdapter");
  if (status.ok()) status = CheckFiles(response, (*connection)->server());
  if (!status.ok()) return ReportRpcError(status, err);

  std::vector<std::pair<std::string, std::string>> files;
  int64_t bytes = 0;
  for (const v1::AdapterFile& file : response.files()) {
    files.emplace_back(file.name(), file.contents());
    bytes += static_cast<int64_t>(file.contents().size());
  }
  if (absl::Status written =
          WriteDirectoryAtomically(options.output_dir, files);
      !written.ok()) {
    return ReportUsageError(written, err);
  }
  if (options.json) {
    out << nlohmann::json{{"adapter", response.adapter()},
                          {"adapter_version", response.adapter_version()},
                          {"rank", response.rank()},
                          {"rank_source", response.rank_source()},
                          {"output", options.output_dir},
                          {"bytes", bytes}}
               .dump()
        << "\n";
  } else {
    out << "exported " << response.adapter() << " (version "
        << response.adapter_version() << ") at rank " << response.rank() << " ("
        << response.rank_source() << ") as a PEFT LoRA adapter, " << bytes
        << " bytes, to " << options.output_dir << "\n";
  }
  out.flush();
  return kExitOk;
}

}  // namespace dylora::client
