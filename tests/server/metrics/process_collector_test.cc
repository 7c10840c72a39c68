#include "server/metrics/process_collector.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/server_metrics.h"
#include "tests/server/http_get.h"

namespace dylora::serving {
namespace {

using ::testing::HasSubstr;

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(ProcessCollectorTest, ReadsThisProcess) {
  const std::optional<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.has_value());
  // Started in the last hour (this test binary), not in the future.
  EXPECT_LE(before->start_time_seconds, NowSeconds() + 1);
  EXPECT_GT(before->start_time_seconds, NowSeconds() - 3600);
  EXPECT_GT(before->resident_bytes, 1 << 20);
  EXPECT_GE(before->virtual_bytes, before->resident_bytes);
  EXPECT_GE(before->threads, 1);
  EXPECT_GE(before->open_fds, 3);  // stdin, stdout, stderr at least
  EXPECT_GE(before->max_fds, before->open_fds);

  // Two more descriptors and some CPU time show up in the next reading.
  const int a = ::open("/dev/null", O_RDONLY);
  const int b = ::open("/dev/null", O_RDONLY);
  volatile double sink = 0;
  for (int i = 0; i < 30'000'000; ++i) sink = sink + std::sqrt(i);
  const std::optional<ProcessStats> after = ReadProcessStats();
  ::close(a);
  ::close(b);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->open_fds, before->open_fds + 2);
  EXPECT_GT(after->cpu_seconds, before->cpu_seconds);
  EXPECT_EQ(after->start_time_seconds, before->start_time_seconds);
}

TEST(ProcessCollectorTest, ScrapeAndExposerCarryTheProcessFamilies) {
  ServerMetrics metrics;
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  auto body = testing::HttpGet(metrics.exposer_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  for (const std::string& text : {metrics.Scrape(), *body}) {
    EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
    for (const char* gauge :
         {"process_resident_memory_bytes", "process_virtual_memory_bytes",
          "process_start_time_seconds", "process_open_fds", "process_max_fds",
          "process_threads"}) {
      EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + gauge + " gauge"));
    }
  }
}

}  // namespace
}  // namespace dylora::serving
