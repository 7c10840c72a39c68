// ServerMetrics: the one owner of the server's prometheus-cpp registry and
// (optionally) its HTTP exposer. Components record through its methods, so
// metric names, labels and buckets live in one file. Names follow
// Prometheus conventions (dylora_ prefix, base units, _total counters,
// _seconds histograms).
//
// clang-format off
//   dylora_requests_total{protocol,adapter,rank,code}       counter
//   dylora_request_duration_seconds{protocol,adapter}       histogram (end to end)
//   dylora_queue_duration_seconds                           histogram
//   dylora_compute_duration_seconds{path}                   histogram (one batch)
//   dylora_batch_size{path}                                 histogram (rows)
//   dylora_rows_total{path}                                 counter
//   dylora_dropped_requests_total{reason}                   counter (deadline, cancelled)
//   dylora_nonfinite_outputs_total{model}                   counter (answers withheld)
//   dylora_merge_cache_hits_total / _misses_total / _evictions_total  counters
//   dylora_merge_cache_bytes, dylora_merge_cache_entries    gauges
//   dylora_merges_total                                     counter
//   dylora_queue_depth_rows, dylora_inflight_requests       gauges
//   dylora_adapters_loaded                                  gauge
//   dylora_adapter_loads_total{result}                      counter (ok, error)
//   dylora_adapter_load_duration_seconds                    histogram
//   process_cpu_seconds_total                               counter (ProcessCollector)
//   process_resident_memory_bytes, process_virtual_memory_bytes  gauges
//   process_start_time_seconds, process_open_fds, process_max_fds, process_threads  gauges
// clang-format on
//
// Label values that come from clients are bounded by the caller: an adapter
// name is only used as a label once it resolved to a loaded adapter.
//
// Thread-safe (prometheus-cpp metrics are atomic; family lookups of labelled
// children are internally locked).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/metrics/process_collector.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace dylora::serving {

class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Serves GET /metrics on `address` ("0.0.0.0:9090"; port 0 picks a free
  // port, see exposer_port()). UNAVAILABLE when it cannot bind.
  absl::Status StartExposer(const std::string& address);
  int exposer_port() const;  // 0 before StartExposer

  // The text exposition format of everything recorded so far.
  std::string Scrape() const;

  // API.
  void RecordRequest(absl::string_view protocol, absl::string_view adapter,
                     int64_t rank, absl::string_view code, double seconds);
  void AddInflight(int64_t delta);
  // Scheduler.
  void SetQueueDepth(int64_t rows);
  void ObserveQueueTime(double seconds);
  void CountDropped(absl::string_view reason);
  // Runtime: a request whose output held NaN or Inf, withheld (`model`: a
  // loaded adapter's name, or the backbone's).
  void CountNonFiniteOutput(absl::string_view model);
  // Engine.
  void ObserveBatch(absl::string_view path, int64_t rows, double seconds);
  void CountMergeCacheHit();
  void CountMergeCacheMiss();
  void CountMergeCacheEvictions(int64_t n);
  void CountMerge();
  void SetMergeCache(int64_t bytes, int64_t entries);
  // Registry.
  void SetAdaptersLoaded(int64_t n);
  void RecordAdapterLoad(bool ok, double seconds);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<ProcessCollector> process_ =
      std::make_shared<ProcessCollector>();
  std::unique_ptr<prometheus::Exposer> exposer_;
  int exposer_port_ = 0;

  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Histogram* queue_duration_;
  prometheus::Family<prometheus::Histogram>* compute_duration_;
  prometheus::Family<prometheus::Histogram>* batch_size_;
  prometheus::Family<prometheus::Counter>* rows_;
  prometheus::Family<prometheus::Counter>* dropped_;
  prometheus::Family<prometheus::Counter>* nonfinite_outputs_;
  prometheus::Counter* cache_hits_;
  prometheus::Counter* cache_misses_;
  prometheus::Counter* cache_evictions_;
  prometheus::Counter* merges_;
  prometheus::Gauge* cache_bytes_;
  prometheus::Gauge* cache_entries_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* inflight_;
  prometheus::Gauge* adapters_loaded_;
  prometheus::Family<prometheus::Counter>* adapter_loads_;
  prometheus::Histogram* adapter_load_duration_;
};

}  // namespace dylora::serving
