// KServe v2 (Open Inference Protocol) end to end: the real server on a
// loopback port, the real MiniLM, a real inference::GRPCInferenceService stub.
#include "server/api/kserve_service.h"

#include <grpcpp/client_context.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "proto/kserve/kserve_tensors.h"
#include "tests/server/test_server.h"

namespace dylora::serving {
namespace {

using ::dylora::kserve::DecodeRawFp32;
using ::dylora::kserve::EncodeRawBytesTensor;
using ::dylora::testing::TestServer;
using ::dylora::testing::TestServerOptions;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace v1 = ::dylora::v1;

constexpr int64_t kHidden = 384;  // MiniLM-L6's embedding width
constexpr int64_t kLabels = 3;    // WriteRandomAdapter's head

const std::vector<std::string> kTexts = {
    "a gripping, beautifully shot film",
    "the plot is thin and the jokes fall flat",
    "it 's a charming and often affecting journey .",
};

// A TEXT input carrying `texts`, either as raw_input_contents (what
// tritonclient sends) or as contents.bytes_contents.
enum class Encoding { kRaw, kContents };

void AddTextInput(inference::ModelInferRequest& request,
                  const std::string& name,
                  const std::vector<std::string>& texts, Encoding encoding) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("BYTES");
  input->add_shape(static_cast<int64_t>(texts.size()));
  if (encoding == Encoding::kRaw) {
    request.add_raw_input_contents(EncodeRawBytesTensor(texts));
  } else {
    for (const std::string& text : texts)
      input->mutable_contents()->add_bytes_contents(text);
  }
}

inference::ModelInferRequest InferRequest(const std::string& model,
                                          const std::vector<std::string>& texts,
                                          Encoding encoding = Encoding::kRaw) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  AddTextInput(request, "TEXT", texts, encoding);
  return request;
}

void SetRank(inference::ModelInferRequest& request, int64_t rank) {
  (*request.mutable_parameters())["rank"].set_int64_param(rank);
}
void SetStringParameter(inference::ModelInferRequest& request,
                        const std::string& name, const std::string& value) {
  (*request.mutable_parameters())[name].set_string_param(value);
}

// The values of output `name` (empty when absent) and its shape.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

Tensor Output(const inference::ModelInferResponse& response,
              const std::string& name) {
  Tensor tensor;
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() != name) continue;
    EXPECT_EQ(response.outputs(i).datatype(), "FP32");
    tensor.shape.assign(response.outputs(i).shape().begin(),
                        response.outputs(i).shape().end());
    EXPECT_EQ(response.raw_output_contents_size(), response.outputs_size());
    if (i < response.raw_output_contents_size()) {
      tensor.values = DecodeRawFp32(response.raw_output_contents(i));
    }
  }
  return tensor;
}

std::vector<float> Row(const Tensor& tensor, int64_t row) {
  const int64_t width = tensor.shape.at(1);
  return std::vector<float>(tensor.values.begin() + row * width,
                            tensor.values.begin() + (row + 1) * width);
}

void ExpectNear(const std::vector<float>& a, const std::vector<float>& b,
                float tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], tolerance) << "element " << i;
  }
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, norm_a = 0, norm_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    norm_a += a[i] * a[i];
    norm_b += b[i] * b[i];
  }
  return dot / std::sqrt(norm_a * norm_b);
}

class KServeServiceTest : public ::testing::Test {
 protected:
  static serving::ServerOptions Options() {
    serving::ServerOptions options = TestServerOptions();
    // Never merge on demand: every adapter request runs the truncated path,
    // so comparisons between requests are exact up to float noise.
    options.runtime.engine.merge_after = 0;
    return options;
  }

  void SetUp() override {
    ASSERT_TRUE(server_.ok());
    server_.AddAdapter("sst", 11);
    stub_ = inference::GRPCInferenceService::NewStub(server_.channel());
    v1_stub_ = v1::DyLoRA::NewStub(server_.channel());
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return stub_->ModelInfer(&context, request, response);
  }

  // Runs `request`, failing the test on an error.
  inference::ModelInferResponse InferOk(
      const inference::ModelInferRequest& request) {
    inference::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_TRUE(status.ok())
        << status.error_code() << ": " << status.error_message();
    return response;
  }

  bool ModelReady(const std::string& name, const std::string& version = "") {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->ModelReady(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.ready();
  }

  grpc::Status ModelMetadata(const std::string& name,
                             const std::string& version,
                             inference::ModelMetadataResponse* response) {
    inference::ModelMetadataRequest request;
    request.set_name(name);
    request.set_version(version);
    grpc::ClientContext context;
    return stub_->ModelMetadata(&context, request, response);
  }

  // The same texts through dylora.v1 Classify at `rank`.
  std::vector<float> ClassifyLogits(const std::vector<std::string>& texts,
                                    const std::vector<std::string>& pairs,
                                    int64_t rank) {
    v1::ClassifyRequest request;
    request.set_adapter("sst");
    request.set_rank(rank);
    for (size_t i = 0; i < texts.size(); ++i) {
      auto* input = request.add_inputs();
      input->set_text(texts[i]);
      if (!pairs.empty()) input->set_text_pair(pairs[i]);
    }
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    grpc::Status status = v1_stub_->Classify(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> logits;
    for (const auto& prediction : response.predictions()) {
      logits.insert(logits.end(), prediction.logits().begin(),
                    prediction.logits().end());
    }
    return logits;
  }

  TestServer server_{Options()};
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::unique_ptr<v1::DyLoRA::Stub> v1_stub_;
};

TEST_F(KServeServiceTest, ServerIsLiveReadyAndNamesItself) {
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse response;
    ASSERT_TRUE(stub_->ServerLive(&context, {}, &response).ok());
    EXPECT_TRUE(response.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &response).ok());
    EXPECT_TRUE(response.ready());
  }
  {
    grpc::ClientContext context;
    inference::ServerMetadataResponse response;
    ASSERT_TRUE(stub_->ServerMetadata(&context, {}, &response).ok());
    EXPECT_EQ(response.name(), "dylora-serve");
    EXPECT_FALSE(response.version().empty());
  }
}

TEST_F(KServeServiceTest, ModelReadyForAdaptersAndTheBackboneOnly) {
  EXPECT_TRUE(ModelReady("sst"));
  EXPECT_TRUE(ModelReady("sst", "1"));
  EXPECT_TRUE(ModelReady("minilm"));
  EXPECT_TRUE(ModelReady("minilm", "1"));
  // Triton's convention: an unknown model or version is "not ready", not an
  // error.
  EXPECT_FALSE(ModelReady("unknown"));
  EXPECT_FALSE(ModelReady("sst", "2"));
  EXPECT_FALSE(ModelReady("minilm", "7"));
}

TEST_F(KServeServiceTest, ModelMetadataDescribesAnAdapter) {
  inference::ModelMetadataResponse response;
  grpc::Status status = ModelMetadata("sst", "", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.name(), "sst");
  EXPECT_THAT(response.versions(), ElementsAre("1"));
  EXPECT_FALSE(response.platform().empty());
  ASSERT_EQ(response.inputs_size(), 2);
  EXPECT_EQ(response.inputs(0).name(), "TEXT");
  EXPECT_EQ(response.inputs(1).name(), "TEXT_PAIR");
  for (const auto& input : response.inputs()) {
    EXPECT_EQ(input.datatype(), "BYTES") << input.name();
    EXPECT_THAT(input.shape(), ElementsAre(-1)) << input.name();
  }
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_EQ(response.outputs(1).name(), "probabilities");
  for (const auto& output : response.outputs()) {
    EXPECT_EQ(output.datatype(), "FP32") << output.name();
    EXPECT_THAT(output.shape(), ElementsAre(-1, kLabels)) << output.name();
  }
}

TEST_F(KServeServiceTest,
       ModelMetadataDescribesTheBackboneAndRefusesUnknownModels) {
  inference::ModelMetadataResponse response;
  grpc::Status status = ModelMetadata("minilm", "", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.name(), "minilm");
  EXPECT_THAT(response.versions(), ElementsAre("1"));
  ASSERT_EQ(response.inputs_size(), 2);
  EXPECT_EQ(response.inputs(0).name(), "TEXT");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "embedding");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(-1, kHidden));

  status = ModelMetadata("unknown", "", &response);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("unknown"));
  status = ModelMetadata("sst", "2", &response);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
}

TEST_F(KServeServiceTest, RawAndContentsEncodingsGiveIdenticalLogits) {
  inference::ModelInferRequest raw =
      InferRequest("sst", kTexts, Encoding::kRaw);
  inference::ModelInferRequest contents =
      InferRequest("sst", kTexts, Encoding::kContents);
  // [N, 1] is accepted as well as [N].
  inference::ModelInferRequest column =
      InferRequest("sst", kTexts, Encoding::kRaw);
  column.mutable_inputs(0)->add_shape(1);
  for (auto* request : {&raw, &contents, &column}) SetRank(*request, 5);

  const Tensor from_raw = Output(InferOk(raw), "logits");
  const Tensor from_contents = Output(InferOk(contents), "logits");
  const Tensor from_column = Output(InferOk(column), "logits");
  EXPECT_THAT(from_raw.shape,
              ElementsAre(static_cast<int64_t>(kTexts.size()), kLabels));
  ASSERT_EQ(from_raw.values.size(), kTexts.size() * kLabels);
  ExpectNear(from_contents.values, from_raw.values, 1e-6);
  ExpectNear(from_column.values, from_raw.values, 1e-6);
}

TEST_F(KServeServiceTest, LogitsEqualDyloraV1ClassifyAtTheSameRank) {
  for (int64_t rank : {1, 4, 8}) {
    inference::ModelInferRequest request = InferRequest("sst", kTexts);
    SetRank(request, rank);
    request.set_id("request-" + std::to_string(rank));
    const inference::ModelInferResponse response = InferOk(request);
    EXPECT_EQ(response.model_name(), "sst");
    EXPECT_EQ(response.model_version(), "1");
    EXPECT_EQ(response.id(), request.id());
    ExpectNear(Output(response, "logits").values,
               ClassifyLogits(kTexts, {}, rank), 1e-5);
  }
}

TEST_F(KServeServiceTest, ProbabilitiesAreTheSoftmaxOfTheLogits) {
  const inference::ModelInferResponse response =
      InferOk(InferRequest("sst", kTexts));
  ASSERT_EQ(response.outputs_size(), 2);
  const Tensor logits = Output(response, "logits");
  const Tensor probabilities = Output(response, "probabilities");
  EXPECT_THAT(probabilities.shape,
              ElementsAre(static_cast<int64_t>(kTexts.size()), kLabels));
  ASSERT_EQ(probabilities.values.size(), kTexts.size() * kLabels);
  for (size_t row = 0; row < kTexts.size(); ++row) {
    const std::vector<float> p = Row(probabilities, row);
    const std::vector<float> l = Row(logits, row);
    double sum = 0, exp_sum = 0;
    for (int64_t k = 0; k < kLabels; ++k) {
      sum += p[k];
      exp_sum += std::exp(l[k]);
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << row;
    for (int64_t k = 0; k < kLabels; ++k) {
      EXPECT_NEAR(p[k], std::exp(l[k]) / exp_sum, 1e-5) << "row " << row;
    }
  }
}

TEST_F(KServeServiceTest, RankParametersSelectTheRankAndAreReported) {
  struct Case {
    std::function<void(inference::ModelInferRequest&)> select;
    int64_t rank;
    std::string source;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { SetRank(r, 5); }, 5, "rank"},
      {[](auto& r) { (*r.mutable_parameters())["rank"].set_uint64_param(3); },
       3, "rank"},
      {[](auto& r) { SetStringParameter(r, "profile", "phone"); }, 2,
       "profile:phone"},
      {[](auto& r) { SetStringParameter(r, "policy", "best"); }, 6,
       "policy:best"},
      {[](auto& r) {
         SetStringParameter(r, "policy", "smallest-within-tolerance");
       },
       3, "policy:smallest-within-tolerance"},
      {[](auto&) {}, 8, "policy:max"},  // the server's default policy
      // Parameters that are not ours (tritonclient's) are ignored.
      {[](auto& r) {
         (*r.mutable_parameters())["sequence_id"].set_int64_param(9);
       },
       8, "policy:max"},
  };
  for (const Case& c : cases) {
    inference::ModelInferRequest request = InferRequest("sst", {kTexts[0]});
    c.select(request);
    const inference::ModelInferResponse response = InferOk(request);
    const auto& parameters = response.parameters();
    ASSERT_TRUE(parameters.contains("rank")) << c.source;
    EXPECT_EQ(parameters.at("rank").int64_param(), c.rank) << c.source;
    ASSERT_TRUE(parameters.contains("rank_source")) << c.source;
    EXPECT_EQ(parameters.at("rank_source").string_param(), c.source);
    ASSERT_TRUE(parameters.contains("execution_path")) << c.source;
    EXPECT_EQ(parameters.at("execution_path").string_param(), "truncated")
        << c.source;
    // The rank reported is the rank computed.
    ExpectNear(Output(response, "logits").values,
               ClassifyLogits({kTexts[0]}, {}, c.rank), 1e-5);
  }
}

TEST_F(KServeServiceTest, RequestedOutputsLimitTheResponse) {
  inference::ModelInferRequest request = InferRequest("sst", kTexts);
  request.add_outputs()->set_name("logits");
  inference::ModelInferResponse response = InferOk(request);
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(Output(response, "logits").values.size(), kTexts.size() * kLabels);

  request.clear_outputs();
  request.add_outputs()->set_name("probabilities");
  response = InferOk(request);
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "probabilities");
}

TEST_F(KServeServiceTest, TextPairsAreEncodedAsPairs) {
  const std::vector<std::string> pairs = {"the second segment", "another one",
                                          "and a third"};
  for (Encoding encoding : {Encoding::kRaw, Encoding::kContents}) {
    inference::ModelInferRequest request =
        InferRequest("sst", kTexts, encoding);
    AddTextInput(request, "TEXT_PAIR", pairs, encoding);
    SetRank(request, 7);
    const Tensor paired = Output(InferOk(request), "logits");
    ExpectNear(paired.values, ClassifyLogits(kTexts, pairs, 7), 1e-5);
    const std::vector<float> single = ClassifyLogits(kTexts, {}, 7);
    ASSERT_FALSE(paired.values.empty());
    ASSERT_FALSE(single.empty());
    EXPECT_GT(std::abs(paired.values[0] - single[0]), 1e-5);
  }
}

TEST_F(KServeServiceTest, BackboneReturnsUnitNormSentenceEmbeddings) {
  const std::vector<std::string> texts = {
      "A man is playing a guitar.",
      "Someone is playing the guitar.",
      "The central bank raised interest rates again.",
  };
  const inference::ModelInferResponse response =
      InferOk(InferRequest("minilm", texts));
  EXPECT_EQ(response.model_name(), "minilm");
  ASSERT_EQ(response.outputs_size(), 1);
  const Tensor embedding = Output(response, "embedding");
  EXPECT_THAT(embedding.shape,
              ElementsAre(static_cast<int64_t>(texts.size()), kHidden));
  ASSERT_EQ(embedding.values.size(), texts.size() * kHidden);
  for (size_t row = 0; row < texts.size(); ++row) {
    double norm = 0;
    for (float value : Row(embedding, row)) norm += value * value;
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-4) << "row " << row;
  }
  EXPECT_GT(Cosine(Row(embedding, 0), Row(embedding, 1)),
            Cosine(Row(embedding, 0), Row(embedding, 2)));
  EXPECT_FALSE(response.parameters().contains("rank"));
  ASSERT_TRUE(response.parameters().contains("execution_path"));
  EXPECT_EQ(response.parameters().at("execution_path").string_param(),
            "backbone");

  // Asking for the embedding by name gives the same values.
  inference::ModelInferRequest named =
      InferRequest("minilm", texts, Encoding::kContents);
  named.add_outputs()->set_name("embedding");
  ExpectNear(Output(InferOk(named), "embedding").values, embedding.values,
             1e-6);
}

TEST_F(KServeServiceTest, BadRequestsGetTheRightCodeAndAMessage) {
  struct Case {
    std::string name;
    inference::ModelInferRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  auto add = [&cases](std::string name, grpc::StatusCode code,
                      std::string message,
                      std::function<void(inference::ModelInferRequest&)> change,
                      const std::string& model = "sst") {
    inference::ModelInferRequest request = InferRequest(model, {"fine"});
    change(request);
    cases.push_back(
        {std::move(name), std::move(request), code, std::move(message)});
  };
  const auto kInvalid = grpc::INVALID_ARGUMENT;
  add("unknown model", grpc::NOT_FOUND, "nope",
      [](auto& r) { r.set_model_name("nope"); });
  add("wrong version", grpc::NOT_FOUND, "version",
      [](auto& r) { r.set_model_version("3"); });
  add("missing TEXT", kInvalid, "TEXT is required",
      [](auto& r) { r.mutable_inputs(0)->set_name("TEXT_PAIR"); });
  add("unknown input", kInvalid, "IMAGE",
      [](auto& r) { AddTextInput(r, "IMAGE", {"x"}, Encoding::kRaw); });
  add("TEXT twice", kInvalid, "twice",
      [](auto& r) { AddTextInput(r, "TEXT", {"x"}, Encoding::kRaw); });
  add("wrong datatype", kInvalid, "BYTES",
      [](auto& r) { r.mutable_inputs(0)->set_datatype("FP32"); });
  add("shape [1, 2]", kInvalid, "shape",
      [](auto& r) { r.mutable_inputs(0)->add_shape(2); });
  add("shape []", kInvalid, "shape",
      [](auto& r) { r.mutable_inputs(0)->clear_shape(); });
  add("shape [-1]", kInvalid, "shape",
      [](auto& r) { r.mutable_inputs(0)->set_shape(0, -1); });
  add("shape [1, 1, 1]", kInvalid, "shape", [](auto& r) {
    r.mutable_inputs(0)->add_shape(1);
    r.mutable_inputs(0)->add_shape(1);
  });
  add("no texts", kInvalid, "no input", [](auto& r) {
    r.mutable_inputs(0)->set_shape(0, 0);
    r.set_raw_input_contents(0, "");
  });
  add("too many texts", kInvalid, "limit is 64", [](auto& r) {
    r.mutable_inputs(0)->set_shape(0, 65);
    r.set_raw_input_contents(
        0, EncodeRawBytesTensor(std::vector<std::string>(65, "a")));
  });
  add("huge shape", kInvalid, "limit",
      [](auto& r) { r.mutable_inputs(0)->set_shape(0, int64_t{1} << 40); });
  add("raw count mismatch", kInvalid, "declares 2",
      [](auto& r) { r.mutable_inputs(0)->set_shape(0, 2); });
  add("raw holds more", kInvalid, "more than", [](auto& r) {
    r.set_raw_input_contents(0, EncodeRawBytesTensor({"a", "b"}));
  });
  // One data source per input (KServe v2: raw_input_contents excludes
  // contents), and only bytes_contents for BYTES.
  add("raw and contents both", kInvalid, "input TEXT has contents while",
      [](auto& r) {
        r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("fine");
      });
  add("typed contents in BYTES", kInvalid,
      "TEXT is BYTES but its contents "
      "hold fp32_contents",
      [](auto& r) {
        r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
      });
  add("int contents in BYTES", kInvalid, "int64_contents", [](auto& r) {
    r.clear_raw_input_contents();
    r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("fine");
    r.mutable_inputs(0)->mutable_contents()->add_int64_contents(3);
  });
  add("shared-memory input", kInvalid, "shared memory is not supported",
      [](auto& r) {
        (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_region"]
            .set_string_param("region0");
      });
  add("shared-memory output", kInvalid, "output logits names a", [](auto& r) {
    auto* output = r.add_outputs();
    output->set_name("logits");
    (*output->mutable_parameters())["shared_memory_region"].set_string_param(
        "region0");
  });
  add("bad raw prefix", kInvalid, "truncated",
      [](auto& r) { r.set_raw_input_contents(0, std::string("\x05\x00", 2)); });
  add("raw length past end", kInvalid, "claims", [](auto& r) {
    r.set_raw_input_contents(0, std::string("\x40\x00\x00\x00short", 9));
  });
  add("raw entries fewer than inputs", kInvalid, "raw_input_contents",
      [](auto& r) {
        auto* pair = r.add_inputs();
        pair->set_name("TEXT_PAIR");
        pair->set_datatype("BYTES");
        pair->add_shape(1);
        pair->mutable_contents()->add_bytes_contents("x");
      });
  add("contents count mismatch", kInvalid, "contents", [](auto& r) {
    r.clear_raw_input_contents();
    r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("one");
    r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("two");
  });
  add("pair count mismatch", kInvalid, "TEXT_PAIR", [](auto& r) {
    AddTextInput(r, "TEXT_PAIR", {"a", "b"}, Encoding::kRaw);
  });
  add("empty text", kInvalid, "empty",
      [](auto& r) { r.set_raw_input_contents(0, EncodeRawBytesTensor({""})); });
  add("non-UTF-8", kInvalid, "UTF-8", [](auto& r) {
    r.set_raw_input_contents(0, EncodeRawBytesTensor({"caf\xc3"}));
  });
  add("non-UTF-8 pair", kInvalid, "UTF-8",
      [](auto& r) { AddTextInput(r, "TEXT_PAIR", {"\xff"}, Encoding::kRaw); });
  add("rank above", kInvalid, "[1, 8]", [](auto& r) { SetRank(r, 9); });
  add("rank zero", kInvalid, "[1, 8]", [](auto& r) { SetRank(r, 0); });
  add("rank negative", kInvalid, "[1, 8]", [](auto& r) { SetRank(r, -3); });
  add("rank huge uint64", kInvalid, "[1, 8]", [](auto& r) {
    (*r.mutable_parameters())["rank"].set_uint64_param(~uint64_t{0});
  });
  add("rank as string", kInvalid, "rank",
      [](auto& r) { SetStringParameter(r, "rank", "4"); });
  add("rank as double", kInvalid, "rank",
      [](auto& r) { (*r.mutable_parameters())["rank"].set_double_param(4.0); });
  add("profile as int", kInvalid, "profile",
      [](auto& r) { (*r.mutable_parameters())["profile"].set_int64_param(2); });
  add("rank and profile", kInvalid, "at most one", [](auto& r) {
    SetRank(r, 4);
    SetStringParameter(r, "profile", "phone");
  });
  add("profile and policy", kInvalid, "at most one", [](auto& r) {
    SetStringParameter(r, "profile", "phone");
    SetStringParameter(r, "policy", "best");
  });
  add("unknown profile", kInvalid, "toaster",
      [](auto& r) { SetStringParameter(r, "profile", "toaster"); });
  add("unknown policy", kInvalid, "fastest",
      [](auto& r) { SetStringParameter(r, "policy", "fastest"); });
  add("unknown output", kInvalid, "scores",
      [](auto& r) { r.add_outputs()->set_name("scores"); });
  add("embedding of an adapter", kInvalid, "embedding",
      [](auto& r) { r.add_outputs()->set_name("embedding"); });
  add(
      "rank on the backbone", kInvalid, "backbone",
      [](auto& r) { SetRank(r, 2); }, "minilm");
  add(
      "profile on the backbone", kInvalid, "backbone",
      [](auto& r) { SetStringParameter(r, "profile", "phone"); }, "minilm");
  add(
      "logits of the backbone", kInvalid, "logits",
      [](auto& r) { r.add_outputs()->set_name("logits"); }, "minilm");

  for (const Case& c : cases) {
    inference::ModelInferResponse response;
    grpc::Status status = Infer(c.request, &response);
    EXPECT_EQ(status.error_code(), c.code)
        << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
  // The server is still healthy afterwards.
  EXPECT_EQ(
      Output(InferOk(InferRequest("sst", {"fine"})), "logits").values.size(),
      static_cast<size_t>(kLabels));
}

TEST_F(KServeServiceTest, UnloadedAdapterIsNoLongerAModel) {
  ASSERT_TRUE(server_.server().runtime().UnloadAdapter("sst").ok());
  EXPECT_FALSE(ModelReady("sst"));
  inference::ModelMetadataResponse metadata;
  EXPECT_EQ(ModelMetadata("sst", "", &metadata).error_code(), grpc::NOT_FOUND);
  inference::ModelInferResponse response;
  EXPECT_EQ(Infer(InferRequest("sst", {"x"}), &response).error_code(),
            grpc::NOT_FOUND);
}

TEST(KServeShutdownTest, NotReadyOnceShutdownBegins) {
  TestServer server;
  ASSERT_TRUE(server.ok());
  server.AddAdapter("sst", 11);
  auto stub = inference::GRPCInferenceService::NewStub(server.channel());
  server.server().runtime().BeginShutdown();
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub->ServerReady(&context, {}, &response).ok());
    EXPECT_FALSE(response.ready());
  }
  {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name("sst");
    inference::ModelReadyResponse response;
    ASSERT_TRUE(stub->ModelReady(&context, request, &response).ok());
    EXPECT_FALSE(response.ready());
  }
  grpc::ClientContext context;
  inference::ModelInferResponse response;
  EXPECT_EQ(stub->ModelInfer(&context, InferRequest("sst", {"x"}), &response)
                .error_code(),
            grpc::UNAVAILABLE);
}

}  // namespace
}  // namespace dylora::serving
