#include "server/registry/adapter_registry.h"

#include <ATen/ATen.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "core/adapter/adapter_io.h"
#include "core/model/encoder.h"
#include "core/model/heads.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/server_metrics.h"
#include "tests/test_paths.h"

namespace dylora::serving {
namespace {

namespace fs = std::filesystem;
using ::dylora::testing::FixturesDir;
using ::dylora::testing::ScopedTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string AdapterFixture(const std::string& name) {
  return FixturesDir() + "/adapter/" + name;
}

// A copy of a fixture adapter directory that a test may damage.
std::string CopyFixture(const ScopedTempDir& tmp, const std::string& fixture,
                        const std::string& as) {
  const fs::path target = fs::path(tmp.path()) / as;
  fs::copy(AdapterFixture(fixture), target, fs::copy_options::recursive);
  return target.string();
}

void ReplaceInFile(const std::string& path, const std::string& from,
                   const std::string& to) {
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_THAT(*text, HasSubstr(from)) << path;
  std::ofstream(path, std::ios::trunc)
      << absl::StrReplaceAll(*text, {{from, to}});
}

std::vector<std::string> Names(
    const std::vector<std::shared_ptr<const ServedAdapter>>& adapters) {
  std::vector<std::string> names;
  for (const auto& a : adapters) names.push_back(a->name);
  return names;
}

class AdapterRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto encoder = Encoder::Load(AdapterFixture("tiny-bert"));
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    encoder_ = std::move(*encoder);
    registry_ = std::make_unique<AdapterRegistry>(encoder_, &metrics_);
  }

  // A fresh adapter for the tiny backbone: lora_B is zero, unlike the
  // fixture's, so its tensors tell the two versions apart.
  std::shared_ptr<const DyLoraAdapter> FreshAdapter() {
    auto head = ClassificationHead::Create(HeadKind::kBertPooled,
                                           encoder_->config().hidden_size, 3,
                                           /*seed=*/11);
    EXPECT_TRUE(head.ok()) << head.status();
    auto adapter = DyLoraAdapter::CreateFresh(
        *encoder_, AdapterConfig{}, head->named_tensors(), /*seed=*/11);
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    (*adapter)->SetRequiresGrad(false);
    return std::move(*adapter);
  }

  const std::string good_ = AdapterFixture("dylora_r8");
  std::shared_ptr<const Encoder> encoder_;
  ServerMetrics metrics_;
  std::unique_ptr<AdapterRegistry> registry_;
};

TEST_F(AdapterRegistryTest, FirstLoadIsVersionOne) {
  auto result = registry_->Load("sst2", good_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_NE(result->adapter, nullptr);
  EXPECT_EQ(result->replaced, nullptr);
  const ServedAdapter& served = *result->adapter;
  EXPECT_EQ(served.name, "sst2");
  EXPECT_EQ(served.version, 1);
  EXPECT_EQ(served.path, good_);
  ASSERT_NE(served.adapter, nullptr);
  EXPECT_EQ(served.adapter->config().r_min, 1);
  EXPECT_EQ(served.adapter->config().r_max, 8);
  EXPECT_EQ(served.head.num_labels(), 3);
  EXPECT_FALSE(served.regression());
  EXPECT_GE(served.load_time, absl::ZeroDuration());
  EXPECT_LE(served.loaded_at, absl::Now());
  // Placed on the backbone's device and dtype.
  const LoraFactors& first = served.adapter->factors().front().second;
  EXPECT_EQ(first.down.device(), encoder_->device());
  EXPECT_EQ(first.down.scalar_type(), encoder_->dtype());

  auto got = registry_->Get("sst2");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, result->adapter);
  EXPECT_EQ(registry_->size(), 1u);
}

TEST_F(AdapterRegistryTest, ListIsSortedByName) {
  for (const char* name : {"mrpc", "cola", "sst2"}) {
    ASSERT_TRUE(registry_->Load(name, good_).ok()) << name;
  }
  EXPECT_THAT(Names(registry_->List()), ElementsAre("cola", "mrpc", "sst2"));
  EXPECT_EQ(registry_->size(), 3u);
}

TEST_F(AdapterRegistryTest, ReplacingKeepsTheOldVersionIntact) {
  auto first = registry_->Load("sst2", good_);
  ASSERT_TRUE(first.ok()) << first.status();
  std::shared_ptr<const ServedAdapter> v1 = first->adapter;
  const at::Tensor v1_up = v1->adapter->factors().front().second.up.clone();
  ASSERT_GT(v1_up.abs().sum().item<double>(), 0.0);

  auto second = registry_->Publish("sst2", FreshAdapter(), "<fresh>");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->adapter->version, 2);
  EXPECT_EQ(second->adapter->path, "<fresh>");
  EXPECT_EQ(second->replaced, v1);
  EXPECT_EQ(*registry_->Get("sst2"), second->adapter);
  EXPECT_EQ(registry_->size(), 1u);

  // The request holding version 1 still sees version 1's tensors.
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->path, good_);
  EXPECT_TRUE(at::equal(v1->adapter->factors().front().second.up, v1_up));
  EXPECT_EQ(second->adapter->adapter->factors()
                .front()
                .second.up.abs()
                .sum()
                .item<double>(),
            0.0);

  auto third = registry_->Load("sst2", good_);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->adapter->version, 3);
  EXPECT_EQ(third->replaced, second->adapter);
}

class RefusedLoadTest : public AdapterRegistryTest {
 protected:
  void SetUp() override {
    AdapterRegistryTest::SetUp();
    auto first = registry_->Load("sst2", good_);
    ASSERT_TRUE(first.ok()) << first.status();
    serving_ = first->adapter;
  }

  // The refused load changed nothing: version 1 still serves, and the next
  // good load is version 2.
  void ExpectUnchanged() {
    auto got = registry_->Get("sst2");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, serving_);
    EXPECT_EQ(registry_->size(), 1u);
    auto next = registry_->Load("sst2", good_);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->adapter->version, 2);
  }

  ScopedTempDir tmp_;
  std::shared_ptr<const ServedAdapter> serving_;
};

TEST_F(RefusedLoadTest, TruncatedSafetensors) {
  const std::string dir = CopyFixture(tmp_, "dylora_r8", "truncated");
  const fs::path weights = fs::path(dir) / kAdapterWeightsFile;
  fs::resize_file(weights, fs::file_size(weights) / 2);
  auto result = registry_->Load("sst2", dir);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
      << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr(kAdapterWeightsFile));
  ExpectUnchanged();
}

TEST_F(RefusedLoadTest, RankInConfigDisagreesWithTensors) {
  const std::string dir = CopyFixture(tmp_, "dylora_r8", "bad_r");
  ReplaceInFile((fs::path(dir) / kAdapterConfigFile).string(), "\"r\": 8,",
                "\"r\": 4,");
  auto result = registry_->Load("sst2", dir);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
      << result.status();
  ExpectUnchanged();
}

TEST_F(RefusedLoadTest, TrainedOnAnotherBackbone) {
  const std::string dir = CopyFixture(tmp_, "dylora_r8", "other_backbone");
  ReplaceInFile((fs::path(dir) / kAdapterConfigFile).string(),
                "\"base_model_fingerprint\": \"\"",
                "\"base_model_fingerprint\": \"0123456789abcdef\"");
  auto result = registry_->Load("sst2", dir);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition)
      << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("0123456789abcdef"));
  ExpectUnchanged();
}

TEST_F(RefusedLoadTest, AdapterForAnotherFamily) {
  auto result = registry_->Load("sst2", AdapterFixture("dylora_roberta_r8"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
      << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("roberta"));
  ExpectUnchanged();
}

TEST_F(RefusedLoadTest, MissingDirectory) {
  const std::string missing = tmp_.path() + "/no-such-adapter";
  auto result = registry_->Load("sst2", missing);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound)
      << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr(missing));
  ExpectUnchanged();
}

TEST_F(RefusedLoadTest, PathIsAFile) {
  const std::string file = (fs::path(good_) / kAdapterConfigFile).string();
  auto result = registry_->Load("sst2", file);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound)
      << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr(file));
  ExpectUnchanged();
}

TEST_F(RefusedLoadTest, PublishOfMismatchedAdapter) {
  auto roberta = ReadAdapter(AdapterFixture("dylora_roberta_r8"));
  ASSERT_TRUE(roberta.ok()) << roberta.status();
  auto result = registry_->Publish(
      "sst2", std::shared_ptr<const DyLoraAdapter>(std::move(*roberta)), "x");
  EXPECT_FALSE(result.ok());
  auto null_result = registry_->Publish("sst2", nullptr, "x");
  EXPECT_EQ(null_result.status().code(), absl::StatusCode::kInvalidArgument);
  ExpectUnchanged();
}

TEST_F(AdapterRegistryTest, UnknownNameIsNotFoundListingLoadedNames) {
  auto none = registry_->Get("sst2");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("\"sst2\""));

  ASSERT_TRUE(registry_->Load("cola", good_).ok());
  ASSERT_TRUE(registry_->Load("mrpc", good_).ok());
  auto missing = registry_->Get("sst2");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("\"sst2\""));
  EXPECT_THAT(missing.status().message(), HasSubstr("cola, mrpc"));
}

TEST_F(AdapterRegistryTest, NotFoundListsAtMostTenNames) {
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(
        registry_->Publish(absl::StrCat("a", i), FreshAdapter(), "").ok());
  }
  auto missing = registry_->Get("b");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("and 2 more"));
}

TEST_F(AdapterRegistryTest, BadNamesAreInvalidArgument) {
  const std::vector<std::string> bad = {
      "",          ".hidden", "a/b",  "../x",
      "has space", "naïve",   "a\nb", std::string(129, 'a')};
  for (const std::string& name : bad) {
    EXPECT_EQ(ValidateAdapterName(name).code(),
              absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_EQ(registry_->Load(name, good_).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
  EXPECT_EQ(registry_->size(), 0u);
  for (const std::string& name :
       {std::string("a.b-c_D9"), std::string("x"), std::string(128, 'z')}) {
    EXPECT_TRUE(ValidateAdapterName(name).ok()) << name;
  }
}

TEST_F(AdapterRegistryTest, UnloadThenReloadContinuesVersions) {
  ASSERT_TRUE(registry_->Load("sst2", good_).ok());
  ASSERT_TRUE(registry_->Load("cola", good_).ok());
  auto removed = registry_->Unload("sst2");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ((*removed)->name, "sst2");
  EXPECT_EQ((*removed)->version, 1);
  EXPECT_EQ(registry_->Get("sst2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(Names(registry_->List()), ElementsAre("cola"));
  EXPECT_EQ(registry_->Unload("sst2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Unload("never").status().code(),
            absl::StatusCode::kNotFound);

  auto reloaded = registry_->Load("sst2", good_);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->adapter->version, 2);
  EXPECT_EQ(reloaded->replaced, nullptr);
}

TEST_F(AdapterRegistryTest, MetricsFollowLoadsAndUnloads) {
  ASSERT_TRUE(registry_->Load("sst2", good_).ok());
  ASSERT_TRUE(registry_->Load("cola", good_).ok());
  EXPECT_FALSE(registry_->Load("mrpc", "/no/such/dir").ok());
  ASSERT_TRUE(registry_->Unload("cola").ok());
  const std::string text = metrics_.Scrape();
  EXPECT_THAT(text, HasSubstr("dylora_adapters_loaded 1"));
  EXPECT_THAT(text, HasSubstr("dylora_adapter_loads_total{result=\"ok\"} 2"));
  EXPECT_THAT(text,
              HasSubstr("dylora_adapter_loads_total{result=\"error\"} 1"));
  EXPECT_THAT(text, HasSubstr("dylora_adapter_load_duration_seconds_count 3"));
}

TEST_F(AdapterRegistryTest, WorksWithoutMetrics) {
  AdapterRegistry registry(encoder_, nullptr);
  ASSERT_TRUE(registry.Load("sst2", good_).ok());
  EXPECT_FALSE(registry.Load("sst2", "/no/such/dir").ok());
  EXPECT_TRUE(registry.Unload("sst2").ok());
}

TEST_F(AdapterRegistryTest, ConcurrentLoadsOfOneNameGetDistinctVersions) {
  constexpr int kThreads = 3;
  constexpr int kLoadsEach = 3;
  absl::Mutex mu;
  std::set<int64_t> versions;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kLoadsEach; ++i) {
        auto result = registry_->Load("sst2", good_);
        if (!result.ok()) continue;
        absl::MutexLock lock(&mu);
        versions.insert(result->adapter->version);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<int64_t> expected;
  for (int v = 1; v <= kThreads * kLoadsEach; ++v) expected.insert(v);
  EXPECT_EQ(versions, expected);
  EXPECT_EQ((*registry_->Get("sst2"))->version, kThreads * kLoadsEach);
}

TEST_F(AdapterRegistryTest, ReadersNeverSeeATornStateDuringReplacement) {
  ASSERT_TRUE(registry_->Load("live", good_).ok());
  ASSERT_TRUE(registry_->Load("other", good_).ok());
  const std::shared_ptr<const DyLoraAdapter> fresh = FreshAdapter();

  std::atomic<bool> stop{false};
  std::atomic<int64_t> reads{0};
  std::atomic<int64_t> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      int64_t last_version = 0;
      while (!stop.load()) {
        auto got = registry_->Get("live");
        const bool ok = got.ok() && *got != nullptr &&
                        (*got)->adapter != nullptr && (*got)->name == "live" &&
                        (*got)->version >= last_version &&
                        (*got)->head.num_labels() == 3 &&
                        !(*got)->adapter->factors().empty();
        if (!ok) {
          bad.fetch_add(1);
        } else {
          last_version = (*got)->version;
        }
        // The other adapter is untouched by the replacements.
        auto other = registry_->Get("other");
        if (!other.ok() || (*other)->version != 1) bad.fetch_add(1);
        if (registry_->List().size() != 2) bad.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  constexpr int kReplacements = 12;
  int failed_replacements = 0;
  for (int i = 0; i < kReplacements; ++i) {
    auto result = i % 2 == 0 ? registry_->Publish("live", fresh, "<fresh>")
                             : registry_->Load("live", good_);
    if (!result.ok()) ++failed_replacements;
  }
  // Let every reader observe the final state at least once.
  const int64_t reads_at_end = reads.load();
  while (reads.load() < reads_at_end + 8) std::this_thread::yield();
  stop.store(true);
  for (auto& reader : readers) reader.join();

  EXPECT_EQ(failed_replacements, 0);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ((*registry_->Get("live"))->version, kReplacements + 1);
}

}  // namespace
}  // namespace dylora::serving
