#include "server/engine/merge_cache.h"

#include <ATen/ATen.h>

#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A one-matrix merge whose query weight of layer 0 is all `value`.
std::shared_ptr<const LinearHook> Hook(float value) {
  std::vector<std::pair<LinearId, at::Tensor>> merged;
  merged.push_back({LinearId{0, LinearKind::kQuery}, at::full({2, 2}, value)});
  return std::make_shared<const MergedWeightsHook>(std::move(merged));
}

MergeKey Key(const std::string& adapter, int64_t version, int64_t rank) {
  return MergeKey{adapter, version, rank};
}

TEST(MergeCacheTest, MissThenHit) {
  MergeCache cache(1000, nullptr);
  EXPECT_EQ(cache.Lookup(Key("a", 1, 4)), nullptr);
  auto hook = Hook(1.0f);
  EXPECT_TRUE(cache.Insert(Key("a", 1, 4), hook, 100));
  EXPECT_EQ(cache.Lookup(Key("a", 1, 4)), hook);
  // Version and rank are part of the key.
  EXPECT_EQ(cache.Lookup(Key("a", 2, 4)), nullptr);
  EXPECT_EQ(cache.Lookup(Key("a", 1, 3)), nullptr);
  EXPECT_EQ(cache.Lookup(Key("b", 1, 4)), nullptr);
  EXPECT_EQ(cache.bytes(), 100);
  EXPECT_EQ(cache.entries(), 1);
}

TEST(MergeCacheTest, ReplaceKeepsOneEntry) {
  MergeCache cache(1000, nullptr);
  EXPECT_TRUE(cache.Insert(Key("a", 1, 4), Hook(1.0f), 100));
  auto replacement = Hook(2.0f);
  EXPECT_TRUE(cache.Insert(Key("a", 1, 4), replacement, 300));
  EXPECT_EQ(cache.entries(), 1);
  EXPECT_EQ(cache.bytes(), 300);
  EXPECT_EQ(cache.Lookup(Key("a", 1, 4)), replacement);
}

TEST(MergeCacheTest, EvictsLeastRecentlyUsedByBytes) {
  MergeCache cache(300, nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 1), Hook(1.0f), 100));
  ASSERT_TRUE(cache.Insert(Key("a", 1, 2), Hook(2.0f), 100));
  ASSERT_TRUE(cache.Insert(Key("a", 1, 3), Hook(3.0f), 100));
  // Touch rank 1: rank 2 becomes the least recently used.
  ASSERT_NE(cache.Lookup(Key("a", 1, 1)), nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 4), Hook(4.0f), 100));
  EXPECT_THAT(cache.CachedRanks("a", 1), ElementsAre(1, 3, 4));
  EXPECT_EQ(cache.bytes(), 300);

  // A 250-byte entry needs the space of the two least recent (3, then 1).
  ASSERT_NE(cache.Lookup(Key("a", 1, 1)), nullptr);
  ASSERT_NE(cache.Lookup(Key("a", 1, 4)), nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 5), Hook(5.0f), 250));
  EXPECT_THAT(cache.CachedRanks("a", 1), ElementsAre(5));
  EXPECT_EQ(cache.bytes(), 250);
  EXPECT_EQ(cache.entries(), 1);
}

TEST(MergeCacheTest, OversizeEntryIsNotKept) {
  MergeCache cache(300, nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 1), Hook(1.0f), 200));
  EXPECT_FALSE(cache.Insert(Key("a", 1, 2), Hook(2.0f), 301));
  // Nothing was flushed out for it.
  EXPECT_THAT(cache.CachedRanks("a", 1), ElementsAre(1));
  EXPECT_EQ(cache.bytes(), 200);
  EXPECT_EQ(cache.Lookup(Key("a", 1, 2)), nullptr);
  // Exactly the budget fits.
  EXPECT_TRUE(cache.Insert(Key("a", 1, 3), Hook(3.0f), 300));
  EXPECT_THAT(cache.CachedRanks("a", 1), ElementsAre(3));
  EXPECT_FALSE(cache.Insert(Key("a", 1, 4), nullptr, 10));
  EXPECT_FALSE(cache.Insert(Key("a", 1, 4), Hook(4.0f), -1));
}

TEST(MergeCacheTest, RetireDropsThatVersionAndOlderOnesOfTheName) {
  MergeCache cache(10000, nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 1), Hook(1.0f), 10));
  ASSERT_TRUE(cache.Insert(Key("a", 2, 1), Hook(1.0f), 20));
  ASSERT_TRUE(cache.Insert(Key("a", 2, 5), Hook(1.0f), 30));
  ASSERT_TRUE(cache.Insert(Key("a", 3, 1), Hook(1.0f), 5));
  ASSERT_TRUE(cache.Insert(Key("ab", 1, 1), Hook(1.0f), 40));
  ASSERT_TRUE(cache.Insert(Key("b", 1, 2), Hook(1.0f), 50));
  cache.Retire("a", 2);
  EXPECT_THAT(cache.CachedRanks("a", 1), IsEmpty());
  EXPECT_THAT(cache.CachedRanks("a", 2), IsEmpty());
  EXPECT_EQ(cache.Lookup(Key("a", 2, 5)), nullptr);
  EXPECT_THAT(cache.CachedRanks("a", 3), ElementsAre(1));  // the new version
  EXPECT_THAT(cache.CachedRanks("ab", 1), ElementsAre(1));
  EXPECT_THAT(cache.CachedRanks("b", 1), ElementsAre(2));
  EXPECT_EQ(cache.bytes(), 95);
  EXPECT_EQ(cache.entries(), 3);
  cache.Retire("missing", 1);
  EXPECT_EQ(cache.entries(), 3);
}

TEST(MergeCacheTest, ARetiredVersionIsNeverInsertedAgain) {
  MergeCache cache(10000, nullptr);
  cache.Retire("a", 2);
  EXPECT_TRUE(cache.IsRetired(Key("a", 1, 1)));
  EXPECT_TRUE(cache.IsRetired(Key("a", 2, 4)));
  EXPECT_FALSE(cache.IsRetired(Key("a", 3, 4)));
  EXPECT_FALSE(cache.IsRetired(Key("b", 1, 4)));
  // A merge of version 2 finishing after the replacement is refused.
  EXPECT_FALSE(cache.Insert(Key("a", 2, 4), Hook(1.0f), 10));
  EXPECT_FALSE(cache.Contains(Key("a", 2, 4)));
  EXPECT_TRUE(cache.Insert(Key("a", 3, 4), Hook(1.0f), 10));
  EXPECT_TRUE(cache.Contains(Key("a", 3, 4)));
  // Retiring an older version later does not lower the floor.
  cache.Retire("a", 1);
  EXPECT_TRUE(cache.IsRetired(Key("a", 2, 4)));
}

TEST(MergeCacheTest, CachedRanksAscendingPerVersion) {
  MergeCache cache(10000, nullptr);
  for (int64_t rank : {7, 2, 5}) {
    ASSERT_TRUE(cache.Insert(Key("a", 3, rank), Hook(1.0f), 10));
  }
  ASSERT_TRUE(cache.Insert(Key("a", 4, 1), Hook(1.0f), 10));
  EXPECT_THAT(cache.CachedRanks("a", 3), ElementsAre(2, 5, 7));
  EXPECT_THAT(cache.CachedRanks("a", 4), ElementsAre(1));
  EXPECT_THAT(cache.CachedRanks("a", 5), IsEmpty());
  EXPECT_EQ(cache.budget_bytes(), 10000);
}

TEST(MergeCacheTest, EvictedEntryHeldByCallerStaysUsable) {
  MergeCache cache(100, nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 1), Hook(3.0f), 100));
  std::shared_ptr<const LinearHook> held = cache.Lookup(Key("a", 1, 1));
  ASSERT_NE(held, nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 2), Hook(4.0f), 100));  // evicts rank 1
  EXPECT_EQ(cache.Lookup(Key("a", 1, 1)), nullptr);
  // The held merge still computes x W^T + b with its own weights.
  const at::Tensor x = at::ones({1, 2});
  const at::Tensor y = held->Apply(LinearId{0, LinearKind::kQuery}, x,
                                   at::zeros({2, 2}), at::zeros({2}));
  EXPECT_TRUE(at::allclose(y, at::full({1, 2}, 6.0f)));
}

TEST(MergeCacheTest, RecordsMetrics) {
  ServerMetrics metrics;
  MergeCache cache(200, &metrics);
  EXPECT_EQ(cache.Lookup(Key("a", 1, 1)), nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 1), Hook(1.0f), 100));
  ASSERT_NE(cache.Lookup(Key("a", 1, 1)), nullptr);
  ASSERT_TRUE(cache.Insert(Key("a", 1, 2), Hook(1.0f), 100));
  ASSERT_TRUE(cache.Insert(Key("a", 1, 3), Hook(1.0f), 150));  // evicts 1 and 2
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_hits_total 1"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_misses_total 1"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_evictions_total 2"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_bytes 150"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_entries 1"));
}

}  // namespace
}  // namespace dylora::serving
