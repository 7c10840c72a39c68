// ServingRuntime with the real MiniLM: Create's checks, Submit's validation,
// rank selection, deadlines, cancellation, truncation, back-pressure and the
// shutdown rules, without any gRPC in between.
#include "server/runtime/serving_runtime.h"

#include <ATen/Context.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/adapter/adapter_io.h"
#include "core/model/encoder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/adapter/adapter_test_util.h"
#include "tests/server/test_adapters.h"
#include "tests/test_paths.h"

namespace dylora::serving {
namespace {

using ::dylora::testing::ModelDir;
using ::dylora::testing::ScopedTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kHidden = 384;  // MiniLM-L6's embedding width

RuntimeOptions TestRuntimeOptions() {
  RuntimeOptions options;
  options.model = ModelDir();
  options.backbone_name = "minilm";
  options.threads = 1;
  options.batcher.max_queue_delay = absl::Milliseconds(1);
  options.batcher.workers = 2;
  EXPECT_TRUE(options.profiles.Add("phone", 2).ok());
  return options;
}

std::unique_ptr<ServingRuntime> MakeRuntime(RuntimeOptions options) {
  auto runtime = ServingRuntime::Create(std::move(options), nullptr);
  EXPECT_TRUE(runtime.ok()) << runtime.status();
  return runtime.ok() ? std::move(*runtime) : nullptr;
}

InferenceCall Call(const std::string& model,
                   const std::vector<std::string>& texts,
                   RankSelector rank = RankSelector::Default()) {
  InferenceCall call;
  call.model = model;
  for (const std::string& text : texts) call.inputs.push_back({text, ""});
  call.rank = std::move(rank);
  return call;
}

// Collects what `done` receives and how often it was called.
class Completion {
 public:
  InferenceDone Callback() {
    return [this](absl::StatusOr<InferenceResult> reply) {
      absl::MutexLock lock(&mu_);
      ++calls_;
      reply_ = std::move(reply);
      if (!done_.HasBeenNotified()) done_.Notify();
    };
  }
  // Waits (up to a minute, so a lost callback fails instead of hanging).
  absl::StatusOr<InferenceResult> Wait() {
    if (!done_.WaitForNotificationWithTimeout(absl::Minutes(1))) {
      return absl::DeadlineExceededError("done was never called");
    }
    absl::MutexLock lock(&mu_);
    return *reply_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Notification done_;
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::StatusOr<InferenceResult>> reply_ ABSL_GUARDED_BY(mu_);
};

// Resolves and submits `call` as the services do; the first error.
absl::Status Submit(ServingRuntime& runtime, InferenceCall call,
                    InferenceDone done) {
  absl::StatusOr<ResolvedRequest> request = runtime.Resolve(std::move(call));
  if (!request.ok()) return request.status();
  return runtime.Submit(*std::move(request), std::move(done));
}

// Submits `call` and waits for its result; a refused call is returned as is.
absl::StatusOr<InferenceResult> SubmitAndWait(ServingRuntime& runtime,
                                              InferenceCall call) {
  Completion completion;
  if (absl::Status submitted =
          Submit(runtime, std::move(call), completion.Callback());
      !submitted.ok()) {
    return submitted;
  }
  return completion.Wait();
}

// The adapter and rank a result ran on; null for the backbone.
const AdapterAtRank* Ran(const InferenceResult& result) {
  return std::get_if<AdapterAtRank>(&result.target);
}

std::vector<float> Row(const InferenceResult& result, int64_t row) {
  return std::vector<float>(result.values.begin() + row * result.width,
                            result.values.begin() + (row + 1) * result.width);
}

double MaxAbsDifference(const std::vector<float>& a,
                        const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double largest = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    largest = std::max(largest, static_cast<double>(std::abs(a[i] - b[i])));
  }
  return largest;
}

TEST(ServingRuntimeCreateTest, LoadsTheRealModelAndNamesTheBackbone) {
  std::unique_ptr<ServingRuntime> runtime = MakeRuntime(TestRuntimeOptions());
  ASSERT_NE(runtime, nullptr);
  EXPECT_EQ(runtime->backbone_name(), "minilm");
  auto backbone = runtime->FindModel("minilm");
  ASSERT_TRUE(backbone.ok()) << backbone.status();
  EXPECT_TRUE(std::holds_alternative<Backbone>(*backbone));
  EXPECT_EQ(runtime->FindModel("sst").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(runtime->accepting());
  EXPECT_EQ(runtime->embedding_width(), kHidden);
  EXPECT_TRUE(runtime->ListAdapters().empty());
}

TEST(ServingRuntimeCreateTest, BackboneNameDefaultsToTheModelDirectoryName) {
  const std::string expected =
      std::filesystem::path(ModelDir()).filename().string();
  ASSERT_FALSE(expected.empty());
  for (const std::string& dir : {ModelDir(), ModelDir() + "/"}) {
    RuntimeOptions options = TestRuntimeOptions();
    options.model = dir;
    options.backbone_name.clear();
    std::unique_ptr<ServingRuntime> runtime = MakeRuntime(options);
    ASSERT_NE(runtime, nullptr) << dir;
    EXPECT_EQ(runtime->backbone_name(), expected) << dir;
  }
}

// By default intra-op threads x batch workers never exceed the cores.
TEST(RuntimeOptionsTest, DefaultThreadsDivideTheCoresAmongTheWorkers) {
  RuntimeOptions options;
  EXPECT_EQ(options.IntraOpThreads(2), 2);  // one worker takes both
  options.batcher.workers = 2;
  EXPECT_EQ(options.IntraOpThreads(2), 1);
  EXPECT_EQ(options.IntraOpThreads(8), 4);
  options.batcher.workers = 3;
  EXPECT_EQ(options.IntraOpThreads(2), 1);  // never 0
  options.threads = 4;                      // an explicit value wins
  EXPECT_EQ(options.IntraOpThreads(2), 4);
}

TEST(ServingRuntimeCreateTest, BadOptionsAreRefusedWithAMessage) {
  ScopedTempDir dir;
  struct Case {
    std::string name;
    std::function<void(RuntimeOptions&)> change;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases = {
      {"no model dir", [](auto& o) { o.model.clear(); },
       absl::StatusCode::kInvalidArgument, "model directory"},
      {"missing model dir", [&](auto& o) { o.model = dir.path() + "/nowhere"; },
       absl::StatusCode::kNotFound, "nowhere"},
      {"model dir without a model", [&](auto& o) { o.model = dir.path(); },
       absl::StatusCode::kNotFound, "config.json"},
      {"missing tokenizer",
       [&](auto& o) { o.tokenizer = dir.path() + "/tok.json"; },
       absl::StatusCode::kNotFound, "tok.json"},
      {"device tpu", [](auto& o) { o.device = "tpu"; },
       absl::StatusCode::kInvalidArgument, "\"tpu\""},
      {"device cuda:abc", [](auto& o) { o.device = "cuda:abc"; },
       absl::StatusCode::kInvalidArgument, "\"cuda:abc\""},
      {"device cuda:-1", [](auto& o) { o.device = "cuda:-1"; },
       absl::StatusCode::kInvalidArgument, "cuda:<n>"},
      {"max tokens 0", [](auto& o) { o.max_tokens = 0; },
       absl::StatusCode::kInvalidArgument, "max-tokens"},
      {"max tokens above the model's", [](auto& o) { o.max_tokens = 100000; },
       absl::StatusCode::kInvalidArgument, "100000"},
      {"max texts 0", [](auto& o) { o.max_texts = 0; },
       absl::StatusCode::kInvalidArgument, "max-texts"},
      {"max text bytes 0", [](auto& o) { o.max_text_bytes = 0; },
       absl::StatusCode::kInvalidArgument, "max-text-bytes"},
      // Refused, never clamped (the batcher and engine take them as given).
      {"no workers", [](auto& o) { o.batcher.workers = 0; },
       absl::StatusCode::kInvalidArgument, "workers"},
      {"empty batches", [](auto& o) { o.batcher.max_batch_size = 0; },
       absl::StatusCode::kInvalidArgument, "max-batch-size"},
      {"negative delay",
       [](auto& o) { o.batcher.max_queue_delay = absl::Milliseconds(-1); },
       absl::StatusCode::kInvalidArgument, "max-queue-delay-ms"},
      {"negative cache", [](auto& o) { o.engine.merge_cache_mb = -1; },
       absl::StatusCode::kInvalidArgument, "merge-cache-mb"},
      {"bad backbone name", [](auto& o) { o.backbone_name = "../etc"; },
       absl::StatusCode::kInvalidArgument, "../etc"},
  };
  if (!at::hasCUDA()) {
    cases.push_back({"cuda without CUDA", [](auto& o) { o.device = "cuda"; },
                     absl::StatusCode::kFailedPrecondition, "CUDA"});
  }
  for (const Case& c : cases) {
    RuntimeOptions options = TestRuntimeOptions();
    c.change(options);
    auto runtime = ServingRuntime::Create(options, nullptr);
    ASSERT_FALSE(runtime.ok()) << c.name;
    EXPECT_EQ(runtime.status().code(), c.code)
        << c.name << ": " << runtime.status();
    EXPECT_THAT(runtime.status().message(), HasSubstr(c.message))
        << c.name << ": " << runtime.status();
  }
}

class ServingRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_ = MakeRuntime(TestRuntimeOptions());
    ASSERT_NE(runtime_, nullptr);
    sst_path_ = dylora::testing::WriteRandomAdapter(
        runtime_->encoder(), adapter_dir_.path(), "sst", 11);
    auto loaded = runtime_->LoadAdapter("sst", sst_path_, {});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
  }

  ScopedTempDir adapter_dir_;
  std::unique_ptr<ServingRuntime> runtime_;
  std::string sst_path_;
};

TEST_F(ServingRuntimeTest, AdapterRequestReturnsOneRowOfLogitsPerText) {
  auto reply = SubmitAndWait(
      *runtime_,
      Call("sst", {"a fine film", "dull", "it works"}, RankSelector::Rank(4)));
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_NE(Ran(*reply), nullptr);
  EXPECT_EQ(Ran(*reply)->adapter->name, "sst");
  EXPECT_EQ(Ran(*reply)->adapter->version, 1);
  EXPECT_EQ(Ran(*reply)->rank, 4);
  EXPECT_EQ(Ran(*reply)->rank_source, "rank");
  EXPECT_EQ(reply->width, 3);
  ASSERT_EQ(reply->values.size(), 9u);
  for (float value : reply->values) EXPECT_TRUE(std::isfinite(value));
  EXPECT_EQ(reply->path, ExecutionPath::kTruncated);
  EXPECT_GE(reply->batch_rows, 3);
  // Different texts, different logits.
  EXPECT_GT(MaxAbsDifference(Row(*reply, 0), Row(*reply, 1)), 1e-5);
}

TEST_F(ServingRuntimeTest, RankSelectorsResolveAsDocumented) {
  struct Case {
    RankSelector selector;
    int64_t rank;
    std::string source;
  };
  const std::vector<Case> cases = {
      {RankSelector::Default(), 8, "policy:max"},
      {RankSelector::Rank(1), 1, "rank"},
      {RankSelector::Profile("phone"), 2, "profile:phone"},
      {RankSelector::Policy(RankPolicy::kBest), 6, "policy:best"},
      {RankSelector::Policy(RankPolicy::kSmallestWithinTolerance), 3,
       "policy:smallest-within-tolerance"},
  };
  for (const Case& c : cases) {
    auto reply = SubmitAndWait(*runtime_, Call("sst", {"a text"}, c.selector));
    ASSERT_TRUE(reply.ok()) << c.source << ": " << reply.status();
    ASSERT_NE(Ran(*reply), nullptr);
    EXPECT_EQ(Ran(*reply)->rank, c.rank) << c.source;
    EXPECT_EQ(Ran(*reply)->rank_source, c.source);
  }
}

TEST_F(ServingRuntimeTest, BackboneRequestReturnsUnitNormEmbeddings) {
  auto reply = SubmitAndWait(
      *runtime_, Call("minilm", {"a cat sits on the mat", "stocks fell"}));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(std::holds_alternative<Backbone>(reply->target));
  EXPECT_EQ(reply->path, ExecutionPath::kBackbone);
  ASSERT_EQ(reply->width, kHidden);
  ASSERT_EQ(reply->values.size(), 2u * kHidden);
  for (int64_t row = 0; row < 2; ++row) {
    double norm = 0;
    for (float value : Row(*reply, row)) norm += value * value;
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-4) << "row " << row;
  }
}

TEST_F(ServingRuntimeTest, TextPairsDifferFromTheFirstTextAlone) {
  InferenceCall pair = Call("sst", {"the premise"}, RankSelector::Rank(8));
  pair.inputs[0].text_pair = "the hypothesis";
  auto paired = SubmitAndWait(*runtime_, std::move(pair));
  auto single = SubmitAndWait(
      *runtime_, Call("sst", {"the premise"}, RankSelector::Rank(8)));
  ASSERT_TRUE(paired.ok()) << paired.status();
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_GT(MaxAbsDifference(paired->values, single->values), 1e-5);
}

TEST_F(ServingRuntimeTest, ValidationErrorsReturnAtOnceAndNeverCallDone) {
  struct Case {
    std::string name;
    InferenceCall call;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({"unknown model", Call("nope", {"x"}),
                   absl::StatusCode::kNotFound, "nope"});
  cases.push_back({"no texts", Call("sst", {}),
                   absl::StatusCode::kInvalidArgument, "no input"});
  cases.push_back({"empty text", Call("sst", {"fine", ""}),
                   absl::StatusCode::kInvalidArgument, "text 1 is empty"});
  cases.push_back({"too many texts",
                   Call("sst", std::vector<std::string>(65, "a")),
                   absl::StatusCode::kInvalidArgument, "limit is 64"});
  cases.push_back({"text too long",
                   Call("sst", {std::string(16 * 1024 + 1, 'a')}),
                   absl::StatusCode::kInvalidArgument, "bytes"});
  cases.push_back({"bad UTF-8", Call("sst", {"caf\xc3"}),
                   absl::StatusCode::kInvalidArgument, "UTF-8"});
  {
    InferenceCall call = Call("sst", {"fine"});
    call.inputs[0].text_pair = "\xff\xfe";
    cases.push_back({"bad UTF-8 pair", std::move(call),
                     absl::StatusCode::kInvalidArgument, "text pair 0"});
  }
  {
    InferenceCall call = Call("sst", {"fine"});
    call.inputs[0].text_pair = std::string(16 * 1024 + 1, 'b');
    cases.push_back({"pair too long", std::move(call),
                     absl::StatusCode::kInvalidArgument, "text pair 0"});
  }
  cases.push_back({"rank above", Call("sst", {"x"}, RankSelector::Rank(9)),
                   absl::StatusCode::kInvalidArgument, "[1, 8]"});
  cases.push_back({"rank zero", Call("sst", {"x"}, RankSelector::Rank(0)),
                   absl::StatusCode::kInvalidArgument, "[1, 8]"});
  cases.push_back({"unknown profile",
                   Call("sst", {"x"}, RankSelector::Profile("toaster")),
                   absl::StatusCode::kInvalidArgument, "toaster"});
  cases.push_back({"rank on the backbone",
                   Call("minilm", {"x"}, RankSelector::Rank(2)),
                   absl::StatusCode::kInvalidArgument, "backbone"});
  cases.push_back({"profile on the backbone",
                   Call("minilm", {"x"}, RankSelector::Profile("phone")),
                   absl::StatusCode::kInvalidArgument, "backbone"});

  Completion completion;
  for (Case& c : cases) {
    absl::Status status =
        Submit(*runtime_, std::move(c.call), completion.Callback());
    EXPECT_EQ(status.code(), c.code) << c.name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(c.message))
        << c.name << ": " << status;
  }
  // A valid request after them completes; none of the refused ones ever did.
  ASSERT_TRUE(SubmitAndWait(*runtime_, Call("sst", {"fine"})).ok());
  EXPECT_EQ(completion.calls(), 0);
}

TEST_F(ServingRuntimeTest, PolicyWithoutRankTableIsFailedPrecondition) {
  std::unique_ptr<DyLoraAdapter> adapter =
      dylora::testing::RandomAdapter(runtime_->encoder(), {}, 7);
  ASSERT_NE(adapter, nullptr);
  const std::string path = adapter_dir_.path() + "/no-table";
  ASSERT_TRUE(SaveAdapter(*adapter, path).ok());
  ASSERT_TRUE(runtime_->LoadAdapter("plain", path, {}).ok());

  Completion completion;
  absl::Status status = Submit(
      *runtime_, Call("plain", {"x"}, RankSelector::Policy(RankPolicy::kBest)),
      completion.Callback());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  // Explicit ranks and max still work without a table.
  auto reply = SubmitAndWait(*runtime_, Call("plain", {"x"}));
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_NE(Ran(*reply), nullptr);
  EXPECT_EQ(Ran(*reply)->rank, 8);
  EXPECT_EQ(completion.calls(), 0);
}

TEST_F(ServingRuntimeTest, AnExpiredDeadlineIsDeadlineExceeded) {
  InferenceCall call = Call("sst", {"too late"});
  call.deadline = absl::Now() - absl::Seconds(1);
  Completion completion;
  absl::Status submitted =
      Submit(*runtime_, std::move(call), completion.Callback());
  if (submitted.ok()) {
    auto reply = completion.Wait();
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded)
        << reply.status();
    EXPECT_EQ(completion.calls(), 1);
  } else {
    EXPECT_EQ(submitted.code(), absl::StatusCode::kDeadlineExceeded)
        << submitted;
    EXPECT_EQ(completion.calls(), 0);
  }
  // The runtime keeps serving.
  EXPECT_TRUE(SubmitAndWait(*runtime_, Call("sst", {"on time"})).ok());
}

TEST_F(ServingRuntimeTest, ACancelledRequestIsCancelled) {
  InferenceCall call = Call("sst", {"never mind"});
  call.is_cancelled = [] { return true; };
  auto reply = SubmitAndWait(*runtime_, std::move(call));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled)
      << reply.status();
}

TEST_F(ServingRuntimeTest, LoadAndUnloadRules) {
  auto as_backbone = runtime_->LoadAdapter("minilm", sst_path_, {});
  EXPECT_EQ(as_backbone.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(as_backbone.status().message(), HasSubstr("backbone"));

  auto bad_prewarm = runtime_->LoadAdapter("other", sst_path_, {0});
  EXPECT_EQ(bad_prewarm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(runtime_->GetAdapter("other").ok());

  auto missing =
      runtime_->LoadAdapter("other", adapter_dir_.path() + "/missing", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound)
      << missing.status();

  EXPECT_EQ(runtime_->UnloadAdapter("unknown").code(),
            absl::StatusCode::kNotFound);

  // Replacing bumps the version; requests see the new one.
  auto replaced = runtime_->LoadAdapter("sst", sst_path_, {4});
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->loaded.adapter->version, 2);
  EXPECT_TRUE(replaced->replaced);
  EXPECT_THAT(replaced->loaded.merged_ranks, ElementsAre(4));  // pre-warmed
  auto reply =
      SubmitAndWait(*runtime_, Call("sst", {"x"}, RankSelector::Rank(4)));
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_NE(Ran(*reply), nullptr);
  EXPECT_EQ(Ran(*reply)->adapter->version, 2);
  EXPECT_EQ(reply->path, ExecutionPath::kMerged);

  ASSERT_TRUE(runtime_->UnloadAdapter("sst").ok());
  EXPECT_EQ(SubmitAndWait(*runtime_, Call("sst", {"x"})).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(runtime_->UnloadAdapter("sst").code(), absl::StatusCode::kNotFound);
}

TEST_F(ServingRuntimeTest, AVersionOtherThanTheOneServingIsNotFound) {
  InferenceCall call = Call("sst", {"x"});
  call.version = 2;
  auto reply = SubmitAndWait(*runtime_, std::move(call));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(reply.status().message(), HasSubstr("serving version 1"));
  call = Call("sst", {"x"});
  call.version = 1;
  EXPECT_TRUE(SubmitAndWait(*runtime_, std::move(call)).ok());
  EXPECT_TRUE(runtime_->FindModel("minilm", kBackboneVersion).ok());
  EXPECT_EQ(runtime_->FindModel("minilm", 2).status().code(),
            absl::StatusCode::kNotFound);
}

// A request resolved before a replacement runs on, and reports, the version
// it resolved: never the newer one.
TEST_F(ServingRuntimeTest, AResolvedRequestKeepsItsVersionAcrossAReplacement) {
  const std::string other_path = dylora::testing::WriteRandomAdapter(
      runtime_->encoder(), adapter_dir_.path(), "other", 12);
  auto v1_alone =
      SubmitAndWait(*runtime_, Call("sst", {"a text"}, RankSelector::Rank(8)));
  ASSERT_TRUE(v1_alone.ok()) << v1_alone.status();

  auto resolved =
      runtime_->Resolve(Call("sst", {"a text"}, RankSelector::Rank(8)));
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_TRUE(runtime_->LoadAdapter("sst", other_path, {}).ok());
  Completion completion;
  ASSERT_TRUE(
      runtime_->Submit(*std::move(resolved), completion.Callback()).ok());
  auto old_version = completion.Wait();
  auto new_version =
      SubmitAndWait(*runtime_, Call("sst", {"a text"}, RankSelector::Rank(8)));
  ASSERT_TRUE(old_version.ok()) << old_version.status();
  ASSERT_TRUE(new_version.ok()) << new_version.status();

  ASSERT_NE(Ran(*old_version), nullptr);
  ASSERT_NE(Ran(*new_version), nullptr);
  EXPECT_EQ(Ran(*old_version)->adapter->version, 1);
  EXPECT_EQ(Ran(*new_version)->adapter->version, 2);
  EXPECT_LT(MaxAbsDifference(old_version->values, v1_alone->values), 1e-5);
  EXPECT_GT(MaxAbsDifference(new_version->values, v1_alone->values), 1e-4);
}

TEST(ServingRuntimeTokenizerTest, IdsOutsideTheBackbonesVocabularyAreRefused) {
  // The tiny test BERT (100 ids) with MiniLM's tokenizer (30522 ids): the
  // runtime catches the mismatch on the host, before any tensor is built.
  RuntimeOptions options = TestRuntimeOptions();
  options.model = dylora::testing::FixturesDir() + "/adapter/tiny-bert";
  options.tokenizer = ModelDir() + "/tokenizer.json";
  options.max_tokens = 32;
  std::unique_ptr<ServingRuntime> runtime = MakeRuntime(options);
  ASSERT_NE(runtime, nullptr);
  auto reply =
      SubmitAndWait(*runtime, Call("minilm", {"a perfectly normal sentence"}));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(reply.status().message(),
              HasSubstr("outside the backbone's vocabulary"));
}

TEST_F(ServingRuntimeTest, AfterBeginShutdownRequestsAreUnavailable) {
  runtime_->BeginShutdown();
  EXPECT_FALSE(runtime_->accepting());
  Completion completion;
  absl::Status status =
      Submit(*runtime_, Call("sst", {"x"}), completion.Callback());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  status = Submit(*runtime_, Call("minilm", {"x"}), completion.Callback());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  runtime_->Shutdown();
  runtime_->Shutdown();  // idempotent, and the destructor runs it once more
  EXPECT_EQ(completion.calls(), 0);
}

TEST(ServingRuntimeTruncationTest, LongTextsAreTruncatedToMaxTokens) {
  RuntimeOptions options = TestRuntimeOptions();
  options.max_tokens = 16;  // [CLS] + 14 word pieces + [SEP]
  std::unique_ptr<ServingRuntime> runtime = MakeRuntime(options);
  ASSERT_NE(runtime, nullptr);
  auto words = [](int count) {
    std::string text;
    for (int i = 0; i < count; ++i) text += "hello ";
    return text;
  };
  auto reply = SubmitAndWait(
      *runtime, Call("minilm", {words(1000), words(14), words(13)}));
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_EQ(reply->values.size(), 3u * kHidden);
  // 1000 words keep exactly the first 14: the same embedding as 14 words,
  // and not that of 13.
  EXPECT_LT(MaxAbsDifference(Row(*reply, 0), Row(*reply, 1)), 1e-5);
  EXPECT_GT(MaxAbsDifference(Row(*reply, 0), Row(*reply, 2)), 1e-4);

  // Pairs are truncated too (longest first) and still run.
  InferenceCall pair = Call("minilm", {words(1000)});
  pair.inputs[0].text_pair = words(500);
  EXPECT_TRUE(SubmitAndWait(*runtime, std::move(pair)).ok());
}

TEST(ServingRuntimeQueueTest, AFullQueueRefusesAtOnceAndShutdownRunsWhatWaits) {
  RuntimeOptions options = TestRuntimeOptions();
  options.batcher.queue_capacity = 2;
  options.batcher.max_batch_size = 64;
  options.batcher.workers = 1;
  // Far longer than the test needs, so the two queued rows cannot start
  // before the third request arrives, however slow the machine; Shutdown
  // drains the queue without waiting for the delay. wait_when_idle: by
  // default an idle worker would run the first request at once and empty
  // the queue (a race this test lost in CI).
  options.batcher.max_queue_delay = absl::Seconds(60);
  options.batcher.wait_when_idle = true;
  Completion queued;  // outlives the runtime, whose Shutdown completes it
  std::unique_ptr<ServingRuntime> runtime = MakeRuntime(options);
  ASSERT_NE(runtime, nullptr);

  ASSERT_TRUE(
      Submit(*runtime, Call("minilm", {"one", "two"}), queued.Callback()).ok());
  Completion refused;
  absl::Status status =
      Submit(*runtime, Call("minilm", {"three"}), refused.Callback());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("capacity 2"));
  EXPECT_EQ(queued.calls(), 0);

  runtime->Shutdown();
  EXPECT_EQ(queued.calls(), 1);
  auto reply = queued.Wait();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->values.size(), 2u * kHidden);
  EXPECT_EQ(refused.calls(), 0);
}

}  // namespace
}  // namespace dylora::serving
