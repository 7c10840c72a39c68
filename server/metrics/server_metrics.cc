#include "server/metrics/server_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dylora::serving {
namespace {

using prometheus::Histogram;

// Bucket boundaries are built once: Family::Add takes them on every call
// (request path), though it uses them only when it creates a child.
// Latencies from 0.5 ms to 10 s: CPU batches take milliseconds, queued
// bursts and cold merges take longer.
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
  return *buckets;
}

const Histogram::BucketBoundaries& BatchSizeBuckets() {
  static const auto* buckets =
      new Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256};
  return *buckets;
}

const Histogram::BucketBoundaries& LoadBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

}  // namespace

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  requests_ = &prometheus::BuildCounter()
                   .Name("dylora_requests_total")
                   .Help("Requests by protocol, adapter, rank and gRPC code")
                   .Register(r);
  request_duration_ =
      &prometheus::BuildHistogram()
           .Name("dylora_request_duration_seconds")
           .Help("End-to-end request latency (received to response ready)")
           .Register(r);
  queue_duration_ = &prometheus::BuildHistogram()
                         .Name("dylora_queue_duration_seconds")
                         .Help("Time a request waited in the batcher queue")
                         .Register(r)
                         .Add({}, LatencyBuckets());
  compute_duration_ = &prometheus::BuildHistogram()
                           .Name("dylora_compute_duration_seconds")
                           .Help("Forward time of one batch, by execution path")
                           .Register(r);
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("dylora_batch_size")
                     .Help("Rows per executed batch, by execution path")
                     .Register(r);
  rows_ = &prometheus::BuildCounter()
               .Name("dylora_rows_total")
               .Help("Rows (texts) executed, by execution path")
               .Register(r);
  dropped_ = &prometheus::BuildCounter()
                  .Name("dylora_dropped_requests_total")
                  .Help("Requests dropped before compute, by reason")
                  .Register(r);
  nonfinite_outputs_ = &prometheus::BuildCounter()
                            .Name("dylora_nonfinite_outputs_total")
                            .Help(
                                "Requests whose output held NaN or Inf, "
                                "withheld (INTERNAL), by model")
                            .Register(r);
  cache_hits_ = &prometheus::BuildCounter()
                     .Name("dylora_merge_cache_hits_total")
                     .Help("Merged-weight cache lookups that hit")
                     .Register(r)
                     .Add({});
  cache_misses_ = &prometheus::BuildCounter()
                       .Name("dylora_merge_cache_misses_total")
                       .Help("Merged-weight cache lookups that missed")
                       .Register(r)
                       .Add({});
  cache_evictions_ = &prometheus::BuildCounter()
                          .Name("dylora_merge_cache_evictions_total")
                          .Help("Merged-weight cache entries evicted (LRU)")
                          .Register(r)
                          .Add({});
  merges_ = &prometheus::BuildCounter()
                 .Name("dylora_merges_total")
                 .Help("Merged weights computed (pre-warm or on demand)")
                 .Register(r)
                 .Add({});
  cache_bytes_ = &prometheus::BuildGauge()
                      .Name("dylora_merge_cache_bytes")
                      .Help("Bytes held by the merged-weight cache")
                      .Register(r)
                      .Add({});
  cache_entries_ =
      &prometheus::BuildGauge()
           .Name("dylora_merge_cache_entries")
           .Help("(adapter, rank) entries in the merged-weight cache")
           .Register(r)
           .Add({});
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("dylora_queue_depth_rows")
                      .Help("Rows waiting in the batcher queue")
                      .Register(r)
                      .Add({});
  inflight_ = &prometheus::BuildGauge()
                   .Name("dylora_inflight_requests")
                   .Help("Requests received and not yet answered")
                   .Register(r)
                   .Add({});
  adapters_loaded_ = &prometheus::BuildGauge()
                          .Name("dylora_adapters_loaded")
                          .Help("Adapters being served")
                          .Register(r)
                          .Add({});
  adapter_loads_ = &prometheus::BuildCounter()
                        .Name("dylora_adapter_loads_total")
                        .Help("Adapter loads by result (ok, error)")
                        .Register(r);
  adapter_load_duration_ =
      &prometheus::BuildHistogram()
           .Name("dylora_adapter_load_duration_seconds")
           .Help("Time to read, validate and publish an adapter")
           .Register(r)
           .Add({}, LoadBuckets());
}

ServerMetrics::~ServerMetrics() = default;

absl::Status ServerMetrics::StartExposer(const std::string& address) {
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError("metrics exposer already started");
  }
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address);
    exposer->RegisterCollectable(registry_);
    exposer->RegisterCollectable(process_);
    const std::vector<int> ports = exposer->GetListeningPorts();
    exposer_port_ = ports.empty() ? 0 : ports.front();
    exposer_ = std::move(exposer);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  return absl::OkStatus();
}

int ServerMetrics::exposer_port() const { return exposer_port_; }

std::string ServerMetrics::Scrape() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : process_->Collect()) {
    families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void ServerMetrics::RecordRequest(absl::string_view protocol,
                                  absl::string_view adapter, int64_t rank,
                                  absl::string_view code, double seconds) {
  const std::string adapter_label =
      adapter.empty() ? std::string("none") : std::string(adapter);
  requests_
      ->Add({{"protocol", std::string(protocol)},
             {"adapter", adapter_label},
             {"rank", rank > 0 ? std::to_string(rank) : std::string("none")},
             {"code", std::string(code)}})
      .Increment();
  request_duration_
      ->Add({{"protocol", std::string(protocol)}, {"adapter", adapter_label}},
            LatencyBuckets())
      .Observe(seconds);
}

void ServerMetrics::AddInflight(int64_t delta) {
  inflight_->Increment(static_cast<double>(delta));
}

void ServerMetrics::SetQueueDepth(int64_t rows) {
  queue_depth_->Set(static_cast<double>(rows));
}

void ServerMetrics::ObserveQueueTime(double seconds) {
  queue_duration_->Observe(seconds);
}

void ServerMetrics::CountDropped(absl::string_view reason) {
  dropped_->Add({{"reason", std::string(reason)}}).Increment();
}

void ServerMetrics::CountNonFiniteOutput(absl::string_view model) {
  nonfinite_outputs_->Add({{"model", std::string(model)}}).Increment();
}

void ServerMetrics::ObserveBatch(absl::string_view path, int64_t rows,
                                 double seconds) {
  const std::string path_label(path);
  compute_duration_->Add({{"path", path_label}}, LatencyBuckets())
      .Observe(seconds);
  batch_size_->Add({{"path", path_label}}, BatchSizeBuckets())
      .Observe(static_cast<double>(rows));
  rows_->Add({{"path", path_label}}).Increment(static_cast<double>(rows));
}

void ServerMetrics::CountMergeCacheHit() { cache_hits_->Increment(); }
void ServerMetrics::CountMergeCacheMiss() { cache_misses_->Increment(); }
void ServerMetrics::CountMergeCacheEvictions(int64_t n) {
  cache_evictions_->Increment(static_cast<double>(n));
}
void ServerMetrics::CountMerge() { merges_->Increment(); }

void ServerMetrics::SetMergeCache(int64_t bytes, int64_t entries) {
  cache_bytes_->Set(static_cast<double>(bytes));
  cache_entries_->Set(static_cast<double>(entries));
}

void ServerMetrics::SetAdaptersLoaded(int64_t n) {
  adapters_loaded_->Set(static_cast<double>(n));
}

void ServerMetrics::RecordAdapterLoad(bool ok, double seconds) {
  adapter_loads_->Add({{"result", ok ? "ok" : "error"}}).Increment();
  adapter_load_duration_->Observe(seconds);
}

}  // namespace dylora::serving
