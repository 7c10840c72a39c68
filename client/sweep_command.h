// dylora-client sweep: the served quality/latency trade-off of one adapter.
// Sends every row of a GLUE dev file at each rank and prints, per rank, the
// task's metrics (trainer/eval/metrics), the adapter's stored rank-table
// value beside the served one, mean and p99 request latency and rows/s.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "client/classifier.h"
#include "client/connection.h"
#include "client/output_format.h"

namespace dylora::client {

struct SweepOptions {
  ConnectionOptions connection;
  std::string adapter;    // required
  std::string task;       // sst2, cola, mrpc, rte, qnli, stsb, mnli, qqp
  std::string data_file;  // empty: <data_dir>/<TASK>/dev.tsv
  std::string data_dir;   // the GLUE root holding SST-2/, MRPC/, ...
  std::string ranks;      // rank list; empty: the adapter's r_min..r_max
  int64_t limit = -1;     // rows; -1: all
  int batch = 32;         // rows per request
  Protocol protocol = Protocol::kDyloraV1;
  OutputFormat format = OutputFormat::kTable;
};

// The dev file of `task` under `data_dir` (dev_matched.tsv for MNLI).
// INVALID_ARGUMENT for an unknown task.
absl::StatusOr<std::string> DefaultGlueDevFile(const std::string& data_dir,
                                               const std::string& task);

// Progress ("rank 3 (2/8): 64/872 rows") goes to `err`, the report to `out`.
int RunSweep(const SweepOptions& options, std::ostream& out, std::ostream& err);

}  // namespace dylora::client
