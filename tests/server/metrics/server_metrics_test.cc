#include "server/metrics/server_metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/http_get.h"

namespace dylora::serving {
namespace {

using ::testing::HasSubstr;

TEST(ServerMetricsTest, ScrapeReportsWhatWasRecorded) {
  ServerMetrics metrics;
  metrics.RecordRequest("dylora.v1", "sst2", 4, "OK", 0.003);
  metrics.RecordRequest("dylora.v1", "sst2", 4, "OK", 0.004);
  metrics.RecordRequest("kserve", "", 0, "NOT_FOUND", 0.0001);
  metrics.ObserveBatch("merged", 8, 0.01);
  metrics.CountMergeCacheHit();
  metrics.CountMergeCacheMiss();
  metrics.CountMergeCacheMiss();
  metrics.CountMergeCacheEvictions(3);
  metrics.SetMergeCache(4096, 2);
  metrics.SetQueueDepth(5);
  metrics.AddInflight(2);
  metrics.AddInflight(-1);
  metrics.SetAdaptersLoaded(3);
  metrics.RecordAdapterLoad(true, 0.2);
  metrics.RecordAdapterLoad(false, 0.1);
  metrics.CountDropped("deadline");

  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr(
      R"(dylora_requests_total{adapter="sst2",code="OK",protocol="dylora.v1",rank="4"} 2)"));
  EXPECT_THAT(text, HasSubstr(
      R"(dylora_requests_total{adapter="none",code="NOT_FOUND",protocol="kserve",rank="none"} 1)"));
  EXPECT_THAT(text, HasSubstr(
      R"(dylora_request_duration_seconds_count{adapter="sst2",protocol="dylora.v1"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_batch_size_sum{path="merged"} 8)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="merged"} 8)"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_hits_total 1"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_misses_total 2"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_evictions_total 3"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_bytes 4096"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_entries 2"));
  EXPECT_THAT(text, HasSubstr("dylora_queue_depth_rows 5"));
  EXPECT_THAT(text, HasSubstr("dylora_inflight_requests 1"));
  EXPECT_THAT(text, HasSubstr("dylora_adapters_loaded 3"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_adapter_loads_total{result="ok"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_adapter_loads_total{result="error"} 1)"));
  EXPECT_THAT(text, HasSubstr("dylora_adapter_load_duration_seconds_count 2"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_dropped_requests_total{reason="deadline"} 1)"));
}

TEST(ServerMetricsTest, ExposerServesTheSameTextOverHttp) {
  ServerMetrics metrics;
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  ASSERT_GT(metrics.exposer_port(), 0);
  metrics.SetAdaptersLoaded(7);
  auto body = testing::HttpGet(metrics.exposer_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("dylora_adapters_loaded 7"));
  EXPECT_THAT(*body, HasSubstr("# TYPE dylora_adapters_loaded gauge"));
}

TEST(ServerMetricsTest, ExposerReportsABindFailure) {
  ServerMetrics first;
  ASSERT_TRUE(first.StartExposer("127.0.0.1:0").ok());
  ServerMetrics second;
  const absl::Status status = second.StartExposer(
      "127.0.0.1:" + std::to_string(first.exposer_port()));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(second.exposer_port(), 0);
}

}  // namespace
}  // namespace dylora::serving
