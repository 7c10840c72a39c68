// dylora.v1 end to end: the real server on a loopback port, real stubs.
#include "server/api/dylora_service.h"

#include <grpcpp/client_context.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/adapter/adapter_hooks.h"
#include "core/adapter/adapter_io.h"
#include "core/io/torch_tensors.h"
#include "core/model/encoder.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/test_server.h"

namespace dylora::serving {
namespace {

using ::dylora::testing::TestServer;
using ::dylora::testing::TestServerOptions;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace v1 = ::dylora::v1;

const std::vector<std::string> kTexts = {
    "a gripping, beautifully shot film",
    "the plot is thin and the jokes fall flat",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
};

v1::ClassifyRequest Request(const std::string& adapter,
                            const std::vector<std::string>& texts) {
  v1::ClassifyRequest request;
  request.set_adapter(adapter);
  for (const std::string& text : texts) request.add_inputs()->set_text(text);
  return request;
}

std::vector<float> Logits(const v1::ClassifyResponse& response) {
  std::vector<float> logits;
  for (const auto& prediction : response.predictions()) {
    logits.insert(logits.end(), prediction.logits().begin(),
                  prediction.logits().end());
  }
  return logits;
}

void ExpectNear(const std::vector<float>& a, const std::vector<float>& b,
                float tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], tolerance) << "element " << i;
  }
}

class DyloraServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok());
    sst_path_ = server_.AddAdapter("sst", 11);
    stub_ = v1::DyLoRA::NewStub(server_.channel());
  }

  grpc::Status Classify(const v1::ClassifyRequest& request,
                        v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return stub_->Classify(&context, request, response);
  }

  // The adapter's logits at `rank` computed in the test with core only:
  // tokenizer -> Encoder::Forward with an AdapterHook -> head.
  std::vector<float> ReferenceLogits(const std::string& adapter_name,
                                     const std::vector<std::string>& texts,
                                     int64_t rank) {
    const Encoder& encoder = server_.server().runtime().encoder();
    auto status = server_.server().runtime().GetAdapter(adapter_name);
    EXPECT_TRUE(status.ok());
    const std::shared_ptr<const ServedAdapter> served = status->adapter;
    auto tokenizer = Tokenizer::FromTokenizerJsonFile(
        dylora::testing::ModelDir() + "/tokenizer.json");
    EXPECT_TRUE(tokenizer.ok());
    tokenizer->set_padding(std::nullopt);
    std::vector<float> logits;
    for (const std::string& text : texts) {
      auto batch = tokenizer->EncodeBatchRectangular({text});
      EXPECT_TRUE(batch.ok());
      EncoderInputs inputs;
      inputs.input_ids =
          at::tensor(batch->input_ids).reshape({1, batch->seq_len});
      inputs.token_type_ids =
          at::tensor(batch->token_type_ids).reshape({1, batch->seq_len});
      inputs.attention_mask =
          at::tensor(batch->attention_mask).reshape({1, batch->seq_len});
      c10::InferenceMode guard;
      auto hook = AdapterHook::Create(*served->adapter, RankSpec::Single(rank));
      EXPECT_TRUE(hook.ok());
      auto outputs = encoder.Forward(inputs, hook->get());
      EXPECT_TRUE(outputs.ok());
      auto row = served->head.Forward(*outputs);
      EXPECT_TRUE(row.ok());
      at::Tensor cpu = row->to(at::kFloat).contiguous();
      logits.insert(logits.end(), cpu.data_ptr<float>(),
                    cpu.data_ptr<float>() + cpu.numel());
    }
    return logits;
  }

  // Admin RPCs open: these tests exercise the RPCs themselves
  // (DyloraServiceAuthTest covers who may call them).
  static serving::ServerOptions InsecureAdminOptions() {
    serving::ServerOptions options = TestServerOptions();
    options.admin_insecure = true;
    return options;
  }

  TestServer server_{InsecureAdminOptions()};
  std::string sst_path_;
  std::unique_ptr<v1::DyLoRA::Stub> stub_;
};

TEST_F(DyloraServiceTest, ClassifyAtAnExplicitRankMatchesTheCoreLibrary) {
  for (int64_t rank : {1, 3, 8}) {
    v1::ClassifyRequest request = Request("sst", kTexts);
    request.set_rank(rank);
    v1::ClassifyResponse response;
    ASSERT_TRUE(Classify(request, &response).ok());
    EXPECT_EQ(response.adapter(), "sst");
    EXPECT_EQ(response.adapter_version(), 1);
    EXPECT_EQ(response.rank(), rank);
    EXPECT_EQ(response.rank_source(), "rank");
    EXPECT_FALSE(response.regression());
    ASSERT_EQ(response.predictions_size(), static_cast<int>(kTexts.size()));
    for (const auto& prediction : response.predictions()) {
      ASSERT_EQ(prediction.scores_size(), 3);
      float sum = 0;
      for (float score : prediction.scores()) sum += score;
      EXPECT_NEAR(sum, 1.0f, 1e-5);
      const auto& logits = prediction.logits();
      EXPECT_EQ(
          prediction.label(),
          std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    EXPECT_GT(response.timings().total_seconds(), 0);
    EXPECT_GE(response.timings().batch_size(),
              static_cast<int64_t>(kTexts.size()));
    ExpectNear(Logits(response), ReferenceLogits("sst", kTexts, rank), 1e-4);
  }
}

TEST_F(DyloraServiceTest, TheAdaptersStoredHeadKindIsHonoured) {
  // Same seed, so the same tensors; one adapter declares a mean-pooled head.
  const std::string mean_path =
      server_.AddAdapter("mean", 11, HeadKind::kMeanPooled);
  const std::string text = kTexts[1];
  v1::ClassifyRequest request = Request("mean", {text});
  request.set_rank(4);
  v1::ClassifyResponse mean_response, pooler_response;
  ASSERT_TRUE(Classify(request, &mean_response).ok());
  request.set_adapter("sst");
  ASSERT_TRUE(Classify(request, &pooler_response).ok());

  // Independent reference: mean of the rank-4 token vectors (one unpadded
  // text: every token is real) through the file's classifier tensors.
  const Encoder& encoder = server_.server().runtime().encoder();
  auto adapter = LoadAdapter(mean_path, encoder);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  auto tokenizer = Tokenizer::FromTokenizerJsonFile(
      dylora::testing::ModelDir() + "/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok());
  tokenizer->set_padding(std::nullopt);
  auto batch = tokenizer->EncodeBatchRectangular({text});
  ASSERT_TRUE(batch.ok());
  c10::InferenceMode guard;
  auto hook = AdapterHook::Create(**adapter, RankSpec::Single(4));
  ASSERT_TRUE(hook.ok());
  auto outputs = encoder.Forward(
      {at::tensor(batch->input_ids).reshape({1, batch->seq_len}),
       at::tensor(batch->token_type_ids).reshape({1, batch->seq_len}),
       {}},
      hook->get());
  ASSERT_TRUE(outputs.ok());
  const at::Tensor expected =
      at::linear(outputs->last_hidden_state.mean(1),
                 *(*adapter)->FindHeadTensor("classifier.weight"),
                 *(*adapter)->FindHeadTensor("classifier.bias"));
  const std::vector<float> want(expected.data_ptr<float>(),
                                expected.data_ptr<float>() + expected.numel());
  ExpectNear(Logits(mean_response), want, 1e-4);
  // The pooler-head adapter with the same tensors answers differently.
  EXPECT_GT(std::abs(Logits(mean_response)[0] - Logits(pooler_response)[0]),
            1e-3);
}

TEST_F(DyloraServiceTest, DifferentRanksGiveDifferentLogits) {
  v1::ClassifyRequest low = Request("sst", {kTexts[0]});
  low.set_rank(1);
  v1::ClassifyRequest high = Request("sst", {kTexts[0]});
  high.set_rank(8);
  v1::ClassifyResponse low_response, high_response;
  ASSERT_TRUE(Classify(low, &low_response).ok());
  ASSERT_TRUE(Classify(high, &high_response).ok());
  EXPECT_GT(std::abs(Logits(low_response)[0] - Logits(high_response)[0]), 1e-4);
}

TEST_F(DyloraServiceTest, ProfilesAndPoliciesPickTheDocumentedRanks) {
  struct Case {
    std::function<void(v1::ClassifyRequest&)> select;
    int64_t rank;
    std::string source;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.set_profile("phone"); }, 2, "profile:phone"},
      {[](auto& r) { r.set_profile("edge"); }, 4, "profile:edge"},
      // A budget above r_max serves r_max.
      {[](auto& r) { r.set_profile("datacenter"); }, 8, "profile:datacenter"},
      {[](auto& r) { r.set_policy(v1::RANK_POLICY_BEST); }, 6, "policy:best"},
      {[](auto& r) { r.set_policy(v1::RANK_POLICY_SMALLEST_WITHIN_TOLERANCE); },
       3, "policy:smallest-within-tolerance"},
      {[](auto& r) { r.set_policy(v1::RANK_POLICY_MAX); }, 8, "policy:max"},
      {[](auto&) {}, 8, "policy:max"},  // the server's default policy
  };
  for (const Case& c : cases) {
    v1::ClassifyRequest request = Request("sst", {kTexts[1]});
    c.select(request);
    v1::ClassifyResponse response;
    ASSERT_TRUE(Classify(request, &response).ok()) << c.source;
    EXPECT_EQ(response.rank(), c.rank) << c.source;
    EXPECT_EQ(response.rank_source(), c.source);
  }
}

TEST_F(DyloraServiceTest, TextPairsAreEncodedAsPairs) {
  v1::ClassifyRequest single = Request("sst", {kTexts[0]});
  v1::ClassifyRequest pair = Request("sst", {kTexts[0]});
  pair.mutable_inputs(0)->set_text_pair(kTexts[1]);
  v1::ClassifyResponse single_response, pair_response;
  ASSERT_TRUE(Classify(single, &single_response).ok());
  ASSERT_TRUE(Classify(pair, &pair_response).ok());
  EXPECT_GT(std::abs(Logits(single_response)[0] - Logits(pair_response)[0]),
            1e-5);
}

TEST_F(DyloraServiceTest, BadRequestsGetTheRightCodeAndAMessage) {
  struct Case {
    std::string name;
    v1::ClassifyRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"unknown adapter", Request("nope", {"x"}), grpc::NOT_FOUND, "nope"});
  {
    auto r = Request("sst", {"x"});
    r.set_rank(9);
    cases.push_back({"rank above", r, grpc::INVALID_ARGUMENT, "[1, 8]"});
    r.set_rank(0);
    cases.push_back({"rank zero", r, grpc::INVALID_ARGUMENT, "[1, 8]"});
    r.set_profile("toaster");
    cases.push_back({"unknown profile", r, grpc::INVALID_ARGUMENT, "toaster"});
  }
  cases.push_back(
      {"no texts", Request("sst", {}), grpc::INVALID_ARGUMENT, "no input"});
  cases.push_back({"empty text", Request("sst", {"ok", ""}),
                   grpc::INVALID_ARGUMENT, "text 1 is empty"});
  cases.push_back({"bad utf-8", Request("sst", {"caf\xc3"}),
                   grpc::INVALID_ARGUMENT, "UTF-8"});
  cases.push_back({"too long", Request("sst", {std::string(20000, 'a')}),
                   grpc::INVALID_ARGUMENT, "bytes"});
  cases.push_back({"too many",
                   Request("sst", std::vector<std::string>(65, "a")),
                   grpc::INVALID_ARGUMENT, "limit is 64"});
  cases.push_back({"backbone", Request("minilm", {"x"}), grpc::INVALID_ARGUMENT,
                   "backbone"});
  for (const Case& c : cases) {
    v1::ClassifyResponse response;
    grpc::Status status = Classify(c.request, &response);
    EXPECT_EQ(status.error_code(), c.code)
        << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
}

TEST_F(DyloraServiceTest, AMessageBeyondTheReceiveLimitIsResourceExhausted) {
  // The server's limit follows --max-texts x --max-text-bytes (3 MiB here),
  // below gRPC's default 4 MiB: 3.5 MiB must be refused by the transport
  // (were it let through, the text-size check would say INVALID_ARGUMENT).
  v1::ClassifyRequest request = Request("sst", {std::string(7 << 19, 'a')});
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED)
      << status.error_message();
  // The server is unharmed.
  ASSERT_TRUE(Classify(Request("sst", {"still fine"}), &response).ok());
}

TEST_F(DyloraServiceTest, ListGetLoadAndUnloadAdapters) {
  // Load a second adapter through the admin RPC, with a pre-warmed rank.
  const std::string path =
      dylora::testing::WriteRandomAdapter(server_.server().runtime().encoder(),
                                          server_.adapter_dir(), "mrpc-a", 21);
  v1::LoadAdapterRequest load;
  load.set_name("mrpc");
  load.set_path(path);
  load.add_prewarm_ranks(4);
  v1::LoadAdapterResponse loaded;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->LoadAdapter(&context, load, &loaded).ok());
  }
  EXPECT_EQ(loaded.adapter().version(), 1);
  EXPECT_FALSE(loaded.replaced());
  EXPECT_THAT(loaded.adapter().merged_ranks(), ElementsAre(4));

  v1::ListAdaptersResponse list;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListAdapters(&context, {}, &list).ok());
  }
  ASSERT_EQ(list.adapters_size(), 2);
  EXPECT_EQ(list.adapters(0).name(), "mrpc");
  EXPECT_EQ(list.adapters(1).name(), "sst");

  v1::GetAdapterRequest get;
  get.set_name("sst");
  v1::AdapterInfo info;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetAdapter(&context, get, &info).ok());
  }
  EXPECT_EQ(info.r_min(), 1);
  EXPECT_EQ(info.r_max(), 8);
  EXPECT_EQ(info.alpha(), 16);
  EXPECT_EQ(info.num_labels(), 3);
  EXPECT_THAT(info.target_modules(), ElementsAre("query", "value"));
  EXPECT_EQ(info.rank_table().metric(), "accuracy");
  EXPECT_EQ(info.rank_table().values_size(), 8);
  EXPECT_EQ(info.rank_table().best_rank(), 6);
  EXPECT_EQ(info.rank_table().smallest_rank_within_tolerance(), 3);
  EXPECT_EQ(info.base_model_fingerprint(),
            server_.server().runtime().encoder().fingerprint());

  // Replace: version 2, replaced = true.
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->LoadAdapter(&context, load, &loaded).ok());
  }
  EXPECT_EQ(loaded.adapter().version(), 2);
  EXPECT_TRUE(loaded.replaced());

  // A corrupt file is refused and version 2 keeps serving.
  const std::string corrupt = server_.adapter_dir() + "/corrupt";
  std::filesystem::copy(path, corrupt);
  std::filesystem::resize_file(corrupt + "/adapter_model.safetensors", 100);
  load.set_path(corrupt);
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->LoadAdapter(&context, load, &loaded);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT)
        << status.error_message();
  }
  load.set_path(server_.adapter_dir() + "/missing");
  {
    grpc::ClientContext context;
    EXPECT_EQ(stub_->LoadAdapter(&context, load, &loaded).error_code(),
              grpc::NOT_FOUND);
  }
  get.set_name("mrpc");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetAdapter(&context, get, &info).ok());
    EXPECT_EQ(info.version(), 2);
  }

  // Unload: gone for new requests.
  v1::UnloadAdapterRequest unload;
  unload.set_name("mrpc");
  v1::UnloadAdapterResponse unloaded;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->UnloadAdapter(&context, unload, &unloaded).ok());
  }
  {
    grpc::ClientContext context;
    EXPECT_EQ(stub_->UnloadAdapter(&context, unload, &unloaded).error_code(),
              grpc::NOT_FOUND);
  }
  v1::ClassifyResponse response;
  EXPECT_EQ(Classify(Request("mrpc", {"x"}), &response).error_code(),
            grpc::NOT_FOUND);
}

// An export is a plain PEFT LoRA at the picked rank: loaded back (through
// the same loader a deployment uses) it answers at its only rank exactly
// what the DyLoRA adapter answers at that rank.
TEST_F(DyloraServiceTest, ExportedSliceAnswersLikeTheAdapterAtItsRank) {
  struct Case {
    v1::ExportAdapterRequest request;
    int64_t rank;
    std::string source;
  };
  std::vector<Case> cases(2);
  cases[0].request.set_rank(3);
  cases[0].rank = 3;
  cases[0].source = "rank";
  cases[1].request.set_profile("phone");
  cases[1].rank = 2;
  cases[1].source = "profile:phone";
  for (Case& c : cases) {
    SCOPED_TRACE(c.source);
    c.request.set_name("sst");
    v1::ExportAdapterResponse exported;
    {
      grpc::ClientContext context;
      ASSERT_TRUE(stub_->ExportAdapter(&context, c.request, &exported).ok());
    }
    EXPECT_EQ(exported.adapter(), "sst");
    EXPECT_EQ(exported.adapter_version(), 1);
    EXPECT_EQ(exported.rank(), c.rank);
    EXPECT_EQ(exported.rank_source(), c.source);
    std::vector<std::pair<std::string, std::string>> files;
    for (const v1::AdapterFile& file : exported.files()) {
      files.emplace_back(file.name(), file.contents());
    }
    ASSERT_EQ(files.size(), 2u);
    const std::string dir =
        server_.adapter_dir() + "/exported-" + std::to_string(c.rank);
    ASSERT_TRUE(WriteDirectoryAtomically(dir, files).ok());

    // PEFT's fields: r is the rank, lora_alpha the adapter's; the DyLoRA
    // section describes a one-rank adapter.
    auto config = nlohmann::json::parse(files[1].first == kAdapterConfigFile
                                            ? files[1].second
                                            : files[0].second);
    EXPECT_EQ(config["r"], c.rank);
    EXPECT_EQ(config["lora_alpha"], 16.0);
    EXPECT_EQ(config["dylora"]["r_max"], c.rank);
    auto slice = ReadAdapter(dir);
    ASSERT_TRUE(slice.ok()) << slice.status();
    EXPECT_EQ((*slice)->config().r_min, c.rank);
    EXPECT_EQ((*slice)->config().r_max, c.rank);

    const std::string name = "sst-slice-" + std::to_string(c.rank);
    ASSERT_TRUE(server_.server().runtime().LoadAdapter(name, dir, {}).ok());
    v1::ClassifyRequest original = Request("sst", kTexts);
    original.set_rank(c.rank);
    v1::ClassifyResponse expected, actual;
    ASSERT_TRUE(Classify(original, &expected).ok());
    ASSERT_TRUE(Classify(Request(name, kTexts), &actual).ok());
    EXPECT_EQ(actual.rank(), c.rank);
    ExpectNear(Logits(actual), Logits(expected), 1e-4);
  }
}

TEST_F(DyloraServiceTest, ExportRefusesWhatItCannotExport) {
  struct Case {
    std::string name;
    int64_t rank;  // 0: unset
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"nope", 0, grpc::StatusCode::NOT_FOUND, "nope"},
      {"sst", 9, grpc::StatusCode::INVALID_ARGUMENT, "[1, 8]"},
      {"minilm", 0, grpc::StatusCode::INVALID_ARGUMENT, "backbone"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::ExportAdapterRequest request;
    request.set_name(c.name);
    if (c.rank > 0) request.set_rank(c.rank);
    v1::ExportAdapterResponse response;
    grpc::ClientContext context;
    const grpc::Status status =
        stub_->ExportAdapter(&context, request, &response);
    EXPECT_EQ(status.error_code(), c.code);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    EXPECT_EQ(response.files_size(), 0);
  }
}

// Weights that are not finite never load (the served version stays); finite
// weights whose output overflows never answer.
TEST_F(DyloraServiceTest,
       NonFiniteWeightsAreRefusedAndNonFiniteOutputsWithheld) {
  const std::string path = server_.adapter_dir() + "/sst-11";
  auto tensors = LoadTensors(path + "/adapter_model.safetensors");
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  const std::string factor =
      "base_model.model.bert.encoder.layer.2.attention.self.query.lora_A."
      "weight";
  // A copy of the adapter whose tensor `tensor` went through `edit`.
  auto write_variant = [&](const std::string& name, const std::string& tensor,
                           const std::function<void(at::Tensor&)>& edit) {
    const std::string dir = server_.adapter_dir() + "/" + name;
    std::filesystem::copy(path, dir);
    std::vector<std::pair<std::string, at::Tensor>> edited;
    for (const auto& [n, t] : *tensors) {
      at::Tensor copy = t.clone();
      if (n == tensor) edit(copy);
      edited.push_back({n, copy});
    }
    EXPECT_TRUE(SaveTensors(dir + "/adapter_model.safetensors", edited).ok());
    return dir;
  };

  v1::LoadAdapterRequest load;
  load.set_name("sst");
  load.set_path(write_variant("nan", factor, [](at::Tensor& t) {
    t.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  }));
  v1::LoadAdapterResponse loaded;
  {
    grpc::ClientContext context;
    const grpc::Status status = stub_->LoadAdapter(&context, load, &loaded);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                AllOf(HasSubstr(factor), HasSubstr("NaN or Inf")));
  }
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify(Request("sst", kTexts), &response).ok());
  EXPECT_EQ(response.adapter_version(), 1);

  // Finite, but every logit overflows float32.
  load.set_name("overflow");
  load.set_path(write_variant("overflow", "base_model.model.classifier.weight",
                              [](at::Tensor& t) { t.fill_(3e38f); }));
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->LoadAdapter(&context, load, &loaded).ok());
  }
  const grpc::Status status = Classify(Request("overflow", kTexts), &response);
  EXPECT_EQ(status.error_code(), grpc::INTERNAL);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("\"overflow\""), HasSubstr("non-finite")));
  EXPECT_THAT(
      server_.server().metrics().Scrape(),
      HasSubstr(R"(dylora_nonfinite_outputs_total{model="overflow"} 1)"));
}

TEST_F(DyloraServiceTest, MergedAndTruncatedPathsGiveTheSameAnswers) {
  // The same adapter twice: one pre-warmed at rank 4 (merged), one not.
  ASSERT_TRUE(
      server_.server().runtime().LoadAdapter("merged", sst_path_, {4}).ok());
  v1::ClassifyRequest truncated = Request("sst", kTexts);
  truncated.set_rank(4);
  v1::ClassifyRequest merged = Request("merged", kTexts);
  merged.set_rank(4);
  v1::ClassifyResponse truncated_response, merged_response;
  ASSERT_TRUE(Classify(truncated, &truncated_response).ok());
  ASSERT_TRUE(Classify(merged, &merged_response).ok());
  EXPECT_EQ(truncated_response.execution_path(), v1::EXECUTION_PATH_TRUNCATED);
  EXPECT_EQ(merged_response.execution_path(), v1::EXECUTION_PATH_MERGED);
  ExpectNear(Logits(merged_response), Logits(truncated_response), 1e-4);
}

TEST(DyloraServiceAuthTest, AdminRpcsNeedTheBearerToken) {
  dylora::testing::ScopedTempDir dir;
  const std::string token_file = dir.path() + "/token";
  ASSERT_TRUE(WriteFileAtomically(token_file, "s3cret\n").ok());
  serving::ServerOptions options = TestServerOptions();
  options.admin_token_file = token_file;
  TestServer server(options);
  ASSERT_TRUE(server.ok());
  auto stub = v1::DyLoRA::NewStub(server.channel());
  const std::string path = dylora::testing::WriteRandomAdapter(
      server.server().runtime().encoder(), dir.path(), "a", 3);
  v1::LoadAdapterRequest load;
  load.set_name("a");
  load.set_path(path);
  v1::LoadAdapterResponse response;
  {
    grpc::ClientContext context;
    EXPECT_EQ(stub->LoadAdapter(&context, load, &response).error_code(),
              grpc::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer wrong");
    EXPECT_EQ(stub->LoadAdapter(&context, load, &response).error_code(),
              grpc::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer s3cret extra");
    EXPECT_EQ(stub->LoadAdapter(&context, load, &response).error_code(),
              grpc::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Basic s3cret");
    EXPECT_EQ(stub->LoadAdapter(&context, load, &response).error_code(),
              grpc::UNAUTHENTICATED);
  }
  // The scheme is case-insensitive (RFC 7235).
  for (const char* header :
       {"Bearer s3cret", "bearer s3cret", "BEARER  s3cret"}) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", header);
    EXPECT_TRUE(stub->LoadAdapter(&context, load, &response).ok()) << header;
  }
  // Inference needs no token.
  v1::ClassifyResponse classified;
  grpc::ClientContext context;
  EXPECT_TRUE(
      stub->Classify(&context, Request("a", {"fine"}), &classified).ok());
}

// Without a token file or --admin-insecure nobody may load or unload, and
// the refusal says how to enable it.
TEST(DyloraServiceAuthTest, AdminRpcsAreClosedByDefault) {
  TestServer server;
  ASSERT_TRUE(server.ok());
  dylora::testing::ScopedTempDir dir;
  auto stub = v1::DyLoRA::NewStub(server.channel());
  v1::LoadAdapterRequest load;
  load.set_name("a");
  load.set_path(dylora::testing::WriteRandomAdapter(
      server.server().runtime().encoder(), dir.path(), "a", 3));
  v1::LoadAdapterResponse response;
  for (const char* header : {"", "Bearer anything"}) {
    grpc::ClientContext context;
    if (*header != '\0') context.AddMetadata("authorization", header);
    const grpc::Status status = stub->LoadAdapter(&context, load, &response);
    EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(), AllOf(HasSubstr("--admin-token-file"),
                                              HasSubstr("--admin-insecure")));
  }
  v1::UnloadAdapterRequest unload;
  unload.set_name("a");
  v1::UnloadAdapterResponse unloaded;
  grpc::ClientContext context;
  EXPECT_EQ(stub->UnloadAdapter(&context, unload, &unloaded).error_code(),
            grpc::PERMISSION_DENIED);
}

// Requests of random ranks from many threads share batches; every answer
// must equal the same request sent alone.
TEST(DyloraServiceConcurrencyTest, MixedRankConcurrentRequestsMatchOneAtATime) {
  serving::ServerOptions options = TestServerOptions();
  // A long delay so that concurrent requests do share batches.
  options.runtime.batcher.max_queue_delay = absl::Milliseconds(20);
  options.runtime.engine.merge_after = 0;
  TestServer server(options);
  ASSERT_TRUE(server.ok());
  server.AddAdapter("sst", 11);
  auto stub = v1::DyLoRA::NewStub(server.channel());

  std::map<std::pair<size_t, int64_t>, std::vector<float>> alone;
  for (size_t t = 0; t < kTexts.size(); ++t) {
    for (int64_t rank = 1; rank <= 8; ++rank) {
      v1::ClassifyRequest request = Request("sst", {kTexts[t]});
      request.set_rank(rank);
      v1::ClassifyResponse response;
      grpc::ClientContext context;
      ASSERT_TRUE(stub->Classify(&context, request, &response).ok());
      alone[{t, rank}] = Logits(response);
    }
  }

  std::atomic<int> failures{0};
  std::atomic<int64_t> largest_batch{0};
  std::vector<std::thread> threads;
  for (int thread = 0; thread < 16; ++thread) {
    threads.emplace_back([&, thread] {
      std::mt19937 random(thread);
      for (int i = 0; i < 8; ++i) {
        const size_t t = random() % kTexts.size();
        const int64_t rank = 1 + random() % 8;
        v1::ClassifyRequest request = Request("sst", {kTexts[t]});
        request.set_rank(rank);
        v1::ClassifyResponse response;
        grpc::ClientContext context;
        if (!stub->Classify(&context, request, &response).ok()) {
          ++failures;
          continue;
        }
        const std::vector<float> logits = Logits(response);
        const std::vector<float>& expected = alone.at({t, rank});
        for (size_t k = 0; k < logits.size(); ++k) {
          if (std::abs(logits[k] - expected[k]) > 1e-4) ++failures;
        }
        int64_t seen = largest_batch.load();
        while (response.timings().batch_size() > seen &&
               !largest_batch.compare_exchange_weak(
                   seen, response.timings().batch_size())) {
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(largest_batch.load(), 1) << "no two requests ever shared a batch";
}

}  // namespace
}  // namespace dylora::serving
