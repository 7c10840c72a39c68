// dylora-client bench: closed-loop load against one adapter (see
// client/load_generator.h) with a mix of ranks, reporting throughput,
// latency percentiles and errors by status code.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "client/classifier.h"
#include "client/connection.h"

namespace dylora::client {

struct BenchOptions {
  ConnectionOptions connection;
  std::string adapter;    // required
  int concurrency = 4;    // workers, each with one request in flight
  int64_t requests = 0;   // total; 0 and no duration: 10 s
  double duration_s = 0;  // 0: until `requests`
  std::string rank_mix;   // rank list drawn uniformly; empty: server default
  int texts_per_request = 1;
  std::string file;  // texts to cycle through; empty: built-in ones
  Protocol protocol = Protocol::kDyloraV1;
  bool json = false;
  double progress_interval_s = 1;
};

// Exit code: 0 when every request succeeded, 1 when some failed (the report
// is printed either way); 3/4 when the adapter check before the run fails.
int RunBench(const BenchOptions& options, std::istream& in, std::ostream& out,
             std::ostream& err);

}  // namespace dylora::client
