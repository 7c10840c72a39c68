#include "server/metrics/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace dylora::serving {
namespace {

// The whole of a small /proc file ("" when unreadable).
std::string ReadProcFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Seconds since the epoch the machine booted (/proc/stat "btime").
std::optional<double> BootTime() {
  std::istringstream lines(ReadProcFile("/proc/stat"));
  for (std::string line; std::getline(lines, line);) {
    double seconds = 0;
    if (line.rfind("btime ", 0) == 0 &&
        absl::SimpleAtod(line.substr(6), &seconds)) {
      return seconds;
    }
  }
  return std::nullopt;
}

prometheus::MetricFamily Family(const char* name, const char* help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

std::optional<ProcessStats> ReadProcessStats() {
  // /proc/self/stat: "pid (comm) state ppid ...": comm may hold spaces and
  // parentheses, so fields are counted from the last ')'.
  const std::string stat = ReadProcFile("/proc/self/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  const std::vector<std::string> fields =
      absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
  // Field numbers of proc(5), minus 3 (pid, comm and the split point).
  constexpr size_t kUtime = 14 - 3, kStime = 15 - 3, kThreads = 20 - 3,
                   kStartTime = 22 - 3, kVsize = 23 - 3, kRss = 24 - 3;
  if (fields.size() <= kRss) return std::nullopt;
  double utime = 0, stime = 0, threads = 0, start = 0, vsize = 0, rss = 0;
  if (!absl::SimpleAtod(fields[kUtime], &utime) ||
      !absl::SimpleAtod(fields[kStime], &stime) ||
      !absl::SimpleAtod(fields[kThreads], &threads) ||
      !absl::SimpleAtod(fields[kStartTime], &start) ||
      !absl::SimpleAtod(fields[kVsize], &vsize) ||
      !absl::SimpleAtod(fields[kRss], &rss)) {
    return std::nullopt;
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const std::optional<double> boot = BootTime();
  if (ticks <= 0 || page <= 0 || !boot.has_value()) return std::nullopt;

  ProcessStats stats;
  stats.cpu_seconds = (utime + stime) / ticks;
  stats.resident_bytes = rss * page;
  stats.virtual_bytes = vsize;
  stats.start_time_seconds = *boot + start / ticks;
  stats.threads = threads;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator();
       it.increment(error)) {
    ++stats.open_fds;
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    stats.max_fds = limit.rlim_cur == RLIM_INFINITY
                        ? 0
                        : static_cast<double>(limit.rlim_cur);
  }
  return stats;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const std::optional<ProcessStats> stats = ReadProcessStats();
  if (!stats.has_value()) return {};
  using prometheus::MetricType;
  return {
      Family("process_cpu_seconds_total",
             "Total user and system CPU time spent in seconds",
             MetricType::Counter, stats->cpu_seconds),
      Family("process_resident_memory_bytes", "Resident memory size in bytes",
             MetricType::Gauge, stats->resident_bytes),
      Family("process_virtual_memory_bytes", "Virtual memory size in bytes",
             MetricType::Gauge, stats->virtual_bytes),
      Family("process_start_time_seconds",
             "Start time of the process since unix epoch in seconds",
             MetricType::Gauge, stats->start_time_seconds),
      Family("process_open_fds", "Number of open file descriptors",
             MetricType::Gauge, stats->open_fds),
      Family("process_max_fds", "Maximum number of open file descriptors",
             MetricType::Gauge, stats->max_fds),
      Family("process_threads", "Number of OS threads in the process",
             MetricType::Gauge, stats->threads),
  };
}

}  // namespace dylora::serving
