// The assembled server in-process: health transitions, draining on
// shutdown, TLS, and a /metrics scrape checked against the traffic sent.
#include "server/app/grpc_server.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <future>
#include <string>
#include <thread>

#include "core/util/file_util.h"
#include "dylora/v1/dylora.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "proto/kserve/kserve_tensors.h"
#include "tests/server/http_get.h"
#include "tests/server/test_server.h"

namespace dylora::serving {
namespace {

using ::dylora::kserve::EncodeRawBytesTensor;
using ::dylora::testing::TestServer;
using ::dylora::testing::TestServerOptions;
using ::testing::HasSubstr;
using ::testing::Not;
namespace v1 = ::dylora::v1;
namespace health = ::grpc::health::v1;

v1::ClassifyRequest Request(const std::string& adapter, int64_t rank,
                            int texts = 1) {
  v1::ClassifyRequest request;
  request.set_adapter(adapter);
  for (int i = 0; i < texts; ++i) {
    request.add_inputs()->set_text("a quietly moving film, number " +
                                   std::to_string(i));
  }
  if (rank > 0) request.set_rank(rank);
  return request;
}

health::HealthCheckResponse::ServingStatus Check(grpc::Channel& channel,
                                                 const std::string& service) {
  auto stub = health::Health::NewStub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  health::HealthCheckRequest request;
  request.set_service(service);
  health::HealthCheckResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.status();
}

TEST(GrpcServerTest, HealthIsServingPerServiceAndTurnsNotServingOnShutdown) {
  TestServer server;
  ASSERT_TRUE(server.ok());
  for (const char* service :
       {"", "dylora.v1.DyLoRA", "inference.GRPCInferenceService"}) {
    EXPECT_EQ(Check(*server.channel(), service),
              health::HealthCheckResponse::SERVING)
        << service;
  }
  // Watch, then shut down: the stream reports NOT_SERVING.
  auto stub = health::Health::NewStub(server.channel());
  grpc::ClientContext context;
  health::HealthCheckRequest request;
  auto watch = stub->Watch(&context, request);
  health::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::SERVING);
  std::thread shutdown([&] { server.server().Shutdown(); });
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::NOT_SERVING);
  context.TryCancel();
  shutdown.join();
  // New requests are refused once shut down.
  auto classify = v1::DyLoRA::NewStub(server.channel());
  v1::ClassifyResponse response;
  grpc::ClientContext late;
  late.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  EXPECT_FALSE(classify->Classify(&late, Request("x", 0), &response).ok());
}

TEST(GrpcServerTest, ShutdownLetsRequestsInFlightFinish) {
  ServerOptions options = TestServerOptions();
  // Requests wait in the queue for a long time (even on an idle worker,
  // which by default runs a lone request at once), so one is surely in
  // flight when the shutdown starts.
  options.runtime.batcher.max_queue_delay = absl::Seconds(2);
  options.runtime.batcher.wait_when_idle = true;
  TestServer server(options);
  ASSERT_TRUE(server.ok());
  server.AddAdapter("sst", 3);
  auto stub = v1::DyLoRA::NewStub(server.channel());
  auto in_flight = std::async(std::launch::async, [&] {
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    grpc::Status status =
        stub->Classify(&context, Request("sst", 4), &response);
    return std::make_pair(status, response);
  });
  // Wait until the server holds the request (in-flight gauge).
  for (int i = 0; i < 500; ++i) {
    if (server.server().metrics().Scrape().find("dylora_inflight_requests 1") !=
        std::string::npos) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_THAT(server.server().metrics().Scrape(),
              HasSubstr("dylora_inflight_requests 1"));
  server.server().Shutdown();
  auto [status, response] = in_flight.get();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.rank(), 4);
  EXPECT_EQ(response.predictions_size(), 1);
}

TEST(GrpcServerTest, MetricsScrapeMatchesTheTrafficSent) {
  ServerOptions options = TestServerOptions();
  options.runtime.engine.merge_after = 0;
  options.metrics_port = 0;
  TestServer server(options);
  ASSERT_TRUE(server.ok());
  const std::string path = server.AddAdapter("sst", 5);
  ASSERT_TRUE(server.server().runtime().LoadAdapter("warm", path, {3}).ok());
  auto stub = v1::DyLoRA::NewStub(server.channel());
  auto classify = [&](const v1::ClassifyRequest& request) {
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    return stub->Classify(&context, request, &response);
  };
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(classify(Request("sst", 2, 2)).ok());
  ASSERT_TRUE(classify(Request("warm", 3, 1)).ok());  // merged (pre-warmed)
  EXPECT_EQ(classify(Request("nope", 2)).error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(classify(Request("sst", 9)).error_code(), grpc::INVALID_ARGUMENT);
  // One KServe inference on the backbone.
  auto kserve = inference::GRPCInferenceService::NewStub(server.channel());
  inference::ModelInferRequest infer;
  infer.set_model_name("minilm");
  auto* input = infer.add_inputs();
  input->set_name("TEXT");
  input->set_datatype("BYTES");
  input->add_shape(1);
  infer.add_raw_input_contents(EncodeRawBytesTensor({"hello"}));
  inference::ModelInferResponse inferred;
  grpc::ClientContext context;
  ASSERT_TRUE(kserve->ModelInfer(&context, infer, &inferred).ok());

  auto scraped =
      dylora::testing::HttpGet(server.server().metrics_port(), "/metrics");
  ASSERT_TRUE(scraped.ok()) << scraped.status();
  const std::string& text = *scraped;
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(dylora_requests_total{adapter="sst",code="OK",protocol="dylora.v1",rank="2"} 3)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(dylora_requests_total{adapter="warm",code="OK",protocol="dylora.v1",rank="3"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(dylora_requests_total{adapter="none",code="NOT_FOUND",protocol="dylora.v1",rank="none"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(dylora_requests_total{adapter="sst",code="INVALID_ARGUMENT",protocol="dylora.v1",rank="none"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(dylora_requests_total{adapter="minilm",code="OK",protocol="kserve",rank="none"} 1)"));
  EXPECT_THAT(text,
              Not(HasSubstr(
                  "adapter=\"nope\"")));  // client strings never become labels
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="truncated"} 6)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="merged"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="backbone"} 1)"));
  EXPECT_THAT(text, HasSubstr("dylora_queue_duration_seconds_count 5"));
  EXPECT_THAT(text, HasSubstr("dylora_merges_total 1"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_entries 1"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_hits_total 1"));
  EXPECT_THAT(text, HasSubstr("dylora_adapters_loaded 2"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_adapter_loads_total{result="ok"} 2)"));
  EXPECT_THAT(text, HasSubstr("dylora_inflight_requests 0"));
  EXPECT_THAT(text, HasSubstr("dylora_queue_depth_rows 0"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(dylora_request_duration_seconds_count{adapter="sst",protocol="dylora.v1"} 4)"));
}

TEST(GrpcServerTest, ServesOverTlsWithTheGivenCertificate) {
  const std::string tls = dylora::testing::FixturesDir() + "/tls";
  ServerOptions options = TestServerOptions();
  options.tls_cert = tls + "/server.crt";
  options.tls_key = tls + "/server.key";
  auto server = DyloraServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto cert = ReadFileToString(tls + "/server.crt");
  ASSERT_TRUE(cert.ok());
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *cert;
  const std::string target = "127.0.0.1:" + std::to_string((*server)->port());
  auto secure = grpc::CreateChannel(target, grpc::SslCredentials(ssl));
  EXPECT_EQ(Check(*secure, ""), health::HealthCheckResponse::SERVING);
  // A plaintext client cannot talk to it.
  auto plain = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = health::Health::NewStub(plain);
  health::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(3));
  EXPECT_FALSE(stub->Check(&context, {}, &response).ok());
}

TEST(GrpcServerTest, StartFailsClearlyOnABadAdapterOrTlsFile) {
  ServerOptions options = TestServerOptions();
  options.adapters.push_back({"bad", "/nonexistent/adapter"});
  auto server = DyloraServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("bad"));

  options = TestServerOptions();
  options.tls_cert = "/nonexistent/cert.pem";
  options.tls_key = "/nonexistent/key.pem";
  server = DyloraServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("cert.pem"));
}

// The admin token file is read once, at start: a missing or empty one
// stops the start with its path named, before any model is loaded.
TEST(GrpcServerStartTest, AMissingOrEmptyAdminTokenFileStopsTheStart) {
  dylora::testing::ScopedTempDir dir;
  ServerOptions options = TestServerOptions();
  options.admin_token_file = dir.path() + "/none";
  auto missing = DyloraServer::Start(options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound)
      << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("none"));

  const std::string empty = dir.path() + "/empty";
  ASSERT_TRUE(WriteFileAtomically(empty, " \n").ok());
  options.admin_token_file = empty;
  auto refused = DyloraServer::Start(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("is empty"));
}

// Start refuses options out of range itself, not only the flag parser.
TEST(GrpcServerStartTest, OptionsOutOfRangeAreRefused) {
  ServerOptions options = TestServerOptions();
  options.runtime.batcher.workers = 0;
  auto refused = DyloraServer::Start(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("workers"));
}

}  // namespace
}  // namespace dylora::serving
