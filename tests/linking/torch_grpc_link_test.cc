// One process, one translation unit: a real gRPC server and client on
// loopback, protobuf messages, and a LibTorch op computed inside the handler.
#include <ATen/ATen.h>
#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <memory>

#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "link_probe.grpc.pb.h"

namespace dylora {
namespace {

at::Tensor FromProto(const testing::Matrix& m) {
  return at::tensor(std::vector<float>(m.values().begin(), m.values().end()))
      .reshape({m.rows(), m.cols()});
}

class LinkProbeService final : public testing::LinkProbe::Service {
  grpc::Status MatMul(grpc::ServerContext*, const testing::MatMulRequest* req,
                      testing::Matrix* reply) override {
    at::Tensor product = at::matmul(FromProto(req->a()), FromProto(req->b()));
    reply->set_rows(product.size(0));
    reply->set_cols(product.size(1));
    at::Tensor flat = product.contiguous().view({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      reply->add_values(flat[i].item<float>());
    }
    return grpc::Status::OK;
  }
};

TEST(TorchGrpcLinkTest, GrpcCallRunsATensorOpInOneBinary) {
  // The generated code was compiled against Debian's protobuf headers, not the
  // copy inside the torch wheel: the versions must agree at run time.
  GOOGLE_PROTOBUF_VERIFY_VERSION;

  grpc::EnableDefaultHealthCheckService(true);
  LinkProbeService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  auto stub = testing::LinkProbe::NewStub(channel);
  testing::MatMulRequest request;
  // [[1,2],[3,4]] x [[5],[6]] = [[17],[39]]
  request.mutable_a()->set_rows(2);
  request.mutable_a()->set_cols(2);
  for (float v : {1.f, 2.f, 3.f, 4.f}) request.mutable_a()->add_values(v);
  request.mutable_b()->set_rows(2);
  request.mutable_b()->set_cols(1);
  for (float v : {5.f, 6.f}) request.mutable_b()->add_values(v);

  testing::Matrix reply;
  grpc::ClientContext context;
  grpc::Status status = stub->MatMul(&context, request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.rows(), 2);
  EXPECT_EQ(reply.cols(), 1);
  ASSERT_EQ(reply.values_size(), 2);
  EXPECT_FLOAT_EQ(reply.values(0), 17.f);
  EXPECT_FLOAT_EQ(reply.values(1), 39.f);

  // The stock health service answers our own generated grpc.health.v1 stub.
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest health_request;
  grpc::health::v1::HealthCheckResponse health_response;
  grpc::ClientContext health_context;
  ASSERT_TRUE(health->Check(&health_context, health_request, &health_response).ok());
  EXPECT_EQ(health_response.status(),
            grpc::health::v1::HealthCheckResponse::SERVING);

  server->Shutdown();
}

}  // namespace
}  // namespace dylora
