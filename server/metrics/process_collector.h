// The process_* metrics every Prometheus exporter is expected to have, read
// from /proc/self at each scrape (prometheus-cpp ships no such collector):
//   process_cpu_seconds_total, process_resident_memory_bytes,
//   process_virtual_memory_bytes, process_start_time_seconds,
//   process_open_fds, process_max_fds, process_threads.
// Linux only; elsewhere (no /proc/self/stat) a scrape has none of them.
// Thread-safe: Collect reads the kernel's files and holds no state.
#pragma once

#include <optional>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace dylora::serving {

// One reading of this process, in Prometheus' base units.
struct ProcessStats {
  double cpu_seconds = 0;     // user + system
  double resident_bytes = 0;  // RSS
  double virtual_bytes = 0;
  double start_time_seconds = 0;  // since the Unix epoch
  double open_fds = 0;
  double max_fds = 0;  // the soft RLIMIT_NOFILE
  double threads = 0;
};

// This process now; nullopt where /proc/self cannot be read or parsed.
std::optional<ProcessStats> ReadProcessStats();

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace dylora::serving
