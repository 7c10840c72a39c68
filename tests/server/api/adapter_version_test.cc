// The version a reply reports is the version its outputs were computed
// with: an adapter is replaced over and over (alternating two adapters with
// different outputs) while dylora.v1 Classify and KServe ModelInfer clients
// call it, and every reply's version must match its logits.
#include <grpcpp/client_context.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "proto/kserve/kserve_tensors.h"
#include "proto/wire_names.h"
#include "tests/server/test_server.h"

namespace dylora::serving {
namespace {

using ::dylora::testing::TestServer;
namespace v1 = ::dylora::v1;

constexpr char kText[] = "a gripping, beautifully shot film";
constexpr int64_t kRank = 5;

// One answer: the version it reports and its logits (empty on an error).
struct Answer {
  int64_t version = 0;
  std::vector<float> logits;
};

Answer ClassifyOnce(v1::DyLoRA::Stub& stub) {
  v1::ClassifyRequest request;
  request.set_adapter("sst");
  request.add_inputs()->set_text(kText);
  request.set_rank(kRank);
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  if (!stub.Classify(&context, request, &response).ok() ||
      response.predictions_size() != 1) {
    return {};
  }
  const auto& logits = response.predictions(0).logits();
  return Answer{response.adapter_version(), {logits.begin(), logits.end()}};
}

Answer InferOnce(inference::GRPCInferenceService::Stub& stub) {
  inference::ModelInferRequest request;
  request.set_model_name("sst");
  auto* input = request.add_inputs();
  input->set_name(wire::kTextInput);
  input->set_datatype("BYTES");
  input->add_shape(1);
  request.add_raw_input_contents(kserve::EncodeRawBytesTensor({kText}));
  (*request.mutable_parameters())[wire::kRankParameter].set_int64_param(kRank);
  request.add_outputs()->set_name(wire::kLogitsOutput);
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  Answer answer;
  if (!stub.ModelInfer(&context, request, &response).ok() ||
      response.raw_output_contents_size() != 1 ||
      !absl::SimpleAtoi(response.model_version(), &answer.version)) {
    return {};
  }
  answer.logits = kserve::DecodeRawFp32(response.raw_output_contents(0));
  return answer;
}

bool Near(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(a[i] - b[i]) > 1e-4) return false;
  }
  return true;
}

TEST(AdapterVersionTest, EveryReplyReportsTheVersionItComputedWith) {
  TestServer server;
  ASSERT_TRUE(server.ok());
  ServingRuntime& runtime = server.server().runtime();
  const std::string path_a = server.AddAdapter("sst", 11);  // version 1
  const std::string path_b = dylora::testing::WriteRandomAdapter(
      runtime.encoder(), server.adapter_dir(), "b", 12);
  auto classify = v1::DyLoRA::NewStub(server.channel());
  auto kserve = inference::GRPCInferenceService::NewStub(server.channel());

  const Answer a = ClassifyOnce(*classify);
  ASSERT_EQ(a.version, 1);
  ASSERT_TRUE(Near(InferOnce(*kserve).logits, a.logits));
  ASSERT_TRUE(runtime.LoadAdapter("sst", path_b, {}).ok());
  const Answer b = ClassifyOnce(*classify);
  ASSERT_EQ(b.version, 2);
  ASSERT_TRUE(Near(InferOnce(*kserve).logits, b.logits));
  ASSERT_FALSE(Near(a.logits, b.logits)) << "the two adapters must differ";

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, mismatches{0}, answers{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      while (!stop.load()) {
        const Answer answer =
            c % 2 == 0 ? ClassifyOnce(*classify) : InferOnce(*kserve);
        if (answer.logits.empty()) {
          ++failures;
          continue;
        }
        ++answers;
        // Odd versions were loaded from A, even ones from B.
        if (!Near(answer.logits,
                  answer.version % 2 == 1 ? a.logits : b.logits)) {
          ++mismatches;
        }
      }
    });
  }
  // Versions 3, 4, ...: at least 20 swaps, and on until plenty of answers
  // overlapped them. The on-demand merges of the rank (merge after 64 rows)
  // happen too, so merged and truncated paths both take part.
  int swaps = 0;
  for (; swaps < 20 || (answers.load() < 400 && swaps < 2000); ++swaps) {
    auto loaded =
        runtime.LoadAdapter("sst", swaps % 2 == 0 ? path_a : path_b, {});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
  }
  stop.store(true);
  for (auto& client : clients) client.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "of " << answers.load() << " answers";
  EXPECT_GT(answers.load(), 0);
}

}  // namespace
}  // namespace dylora::serving
