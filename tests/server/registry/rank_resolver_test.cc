#include "server/registry/rank_resolver.h"

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/adapter/adapter_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora::serving {
namespace {

using ::dylora::testing::FixturesDir;
using ::testing::HasSubstr;

// The fixture adapter: r 1..8, rank table recommending best 8 and
// smallest-within-tolerance 7.
std::unique_ptr<DyLoraAdapter> FixtureAdapter() {
  auto adapter = ReadAdapter(FixturesDir() + "/adapter/dylora_r8");
  EXPECT_TRUE(adapter.ok()) << adapter.status();
  return adapter.ok() ? std::move(*adapter) : nullptr;
}

// An adapter with ranks r_min..r_max and no rank table.
std::unique_ptr<DyLoraAdapter> AdapterWithoutTable(int64_t r_min,
                                                   int64_t r_max) {
  AdapterConfig config;
  config.r_min = r_min;
  config.r_max = r_max;
  config.target_kinds = {LinearKind::kQuery};
  std::vector<std::pair<LinearId, LoraFactors>> factors;
  factors.push_back(
      {LinearId{0, LinearKind::kQuery},
       LoraFactors{at::zeros({r_max, 4}), at::zeros({4, r_max})}});
  auto adapter = DyLoraAdapter::FromParts(config, std::move(factors), {});
  EXPECT_TRUE(adapter.ok()) << adapter.status();
  return adapter.ok() ? std::move(*adapter) : nullptr;
}

DeviceProfiles Profiles(std::vector<std::string> entries) {
  auto profiles = DeviceProfiles::Parse(entries);
  EXPECT_TRUE(profiles.ok()) << profiles.status();
  return profiles.ok() ? *profiles : DeviceProfiles();
}

class RankResolverTest : public ::testing::Test {
 protected:
  absl::StatusOr<ResolvedRank> Resolve(
      const RankSelector& selector, const DyLoraAdapter& adapter,
      RankPolicy default_policy = RankPolicy::kMax) {
    return ResolveRank(selector, adapter, profiles_, default_policy);
  }

  std::unique_ptr<DyLoraAdapter> fixture_ = FixtureAdapter();
  DeviceProfiles profiles_ = Profiles({"phone=2", "edge=4", "server=64"});
};

TEST_F(RankResolverTest, ExplicitRankInRange) {
  ASSERT_NE(fixture_, nullptr);
  for (int64_t rank : {1, 5, 8}) {
    auto resolved = Resolve(RankSelector::Rank(rank), *fixture_);
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    EXPECT_EQ(resolved->rank, rank);
    EXPECT_EQ(resolved->source, "rank");
  }
}

TEST_F(RankResolverTest, ExplicitRankOutOfRangeNamesTheRange) {
  ASSERT_NE(fixture_, nullptr);
  auto above = Resolve(RankSelector::Rank(9), *fixture_);
  EXPECT_EQ(above.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(above.status().message(),
              HasSubstr("rank 9 is outside this adapter's range [1, 8]"));
  EXPECT_EQ(Resolve(RankSelector::Rank(0), *fixture_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Resolve(RankSelector::Rank(-3), *fixture_).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto narrow = AdapterWithoutTable(3, 6);
  ASSERT_NE(narrow, nullptr);
  auto below = Resolve(RankSelector::Rank(2), *narrow);
  EXPECT_EQ(below.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(below.status().message(), HasSubstr("[3, 6]"));
}

TEST_F(RankResolverTest, ProfileWithinRange) {
  ASSERT_NE(fixture_, nullptr);
  auto phone = Resolve(RankSelector::Profile("phone"), *fixture_);
  ASSERT_TRUE(phone.ok()) << phone.status();
  EXPECT_EQ(phone->rank, 2);
  EXPECT_EQ(phone->source, "profile:phone");
  auto edge = Resolve(RankSelector::Profile("edge"), *fixture_);
  ASSERT_TRUE(edge.ok()) << edge.status();
  EXPECT_EQ(edge->rank, 4);
}

TEST_F(RankResolverTest, ProfileAboveRMaxIsClamped) {
  ASSERT_NE(fixture_, nullptr);
  auto server = Resolve(RankSelector::Profile("server"), *fixture_);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->rank, 8);
  EXPECT_EQ(server->source, "profile:server");
}

TEST_F(RankResolverTest, ProfileBelowRMinNamesTheRange) {
  auto narrow = AdapterWithoutTable(3, 6);
  ASSERT_NE(narrow, nullptr);
  auto phone = Resolve(RankSelector::Profile("phone"), *narrow);
  EXPECT_EQ(phone.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(phone.status().message(), HasSubstr("phone"));
  EXPECT_THAT(phone.status().message(), HasSubstr("[3, 6]"));
  auto edge = Resolve(RankSelector::Profile("edge"), *narrow);
  ASSERT_TRUE(edge.ok()) << edge.status();
  EXPECT_EQ(edge->rank, 4);
}

TEST_F(RankResolverTest, UnknownProfileListsKnownOnes) {
  ASSERT_NE(fixture_, nullptr);
  auto tablet = Resolve(RankSelector::Profile("tablet"), *fixture_);
  EXPECT_EQ(tablet.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tablet.status().message(), HasSubstr("\"tablet\""));
  EXPECT_THAT(tablet.status().message(), HasSubstr("edge"));
  EXPECT_THAT(tablet.status().message(), HasSubstr("phone"));
  EXPECT_THAT(tablet.status().message(), HasSubstr("server"));

  auto none = ResolveRank(RankSelector::Profile("phone"), *fixture_,
                          DeviceProfiles(), RankPolicy::kMax);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("none are configured"));
}

TEST_F(RankResolverTest, PoliciesWithTheFixtureTable) {
  ASSERT_NE(fixture_, nullptr);
  struct Case {
    RankPolicy policy;
    int64_t rank;
    const char* source;
  };
  for (const Case& c : {Case{RankPolicy::kMax, 8, "policy:max"},
                        Case{RankPolicy::kBest, 8, "policy:best"},
                        Case{RankPolicy::kSmallestWithinTolerance, 7,
                             "policy:smallest-within-tolerance"}}) {
    auto resolved = Resolve(RankSelector::Policy(c.policy), *fixture_);
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    EXPECT_EQ(resolved->rank, c.rank) << c.source;
    EXPECT_EQ(resolved->source, c.source);
    // The default selector uses the server's default policy, reported alike.
    auto by_default = Resolve(RankSelector::Default(), *fixture_, c.policy);
    ASSERT_TRUE(by_default.ok()) << by_default.status();
    EXPECT_EQ(by_default->rank, c.rank) << c.source;
    EXPECT_EQ(by_default->source, c.source);
  }
}

TEST_F(RankResolverTest, TablePoliciesWithoutATableFail) {
  auto plain = AdapterWithoutTable(2, 6);
  ASSERT_NE(plain, nullptr);
  auto max = Resolve(RankSelector::Policy(RankPolicy::kMax), *plain);
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(max->rank, 6);
  for (RankPolicy policy :
       {RankPolicy::kBest, RankPolicy::kSmallestWithinTolerance}) {
    auto resolved = Resolve(RankSelector::Policy(policy), *plain);
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kFailedPrecondition)
        << RankPolicyName(policy);
    EXPECT_THAT(resolved.status().message(), HasSubstr("rank table"));
    EXPECT_EQ(Resolve(RankSelector::Default(), *plain, policy).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(RankResolverTest, RecommendationsAreComputedWhenOnlyValuesAreStored) {
  auto adapter = AdapterWithoutTable(1, 4);
  ASSERT_NE(adapter, nullptr);
  RankMetrics metrics;
  metrics.metric = "loss";
  metrics.higher_is_better = false;
  metrics.values = {{1, 0.9}, {2, 0.52}, {3, 0.5}, {4, 0.6}};
  metrics.tolerance = 0.05;
  adapter->set_rank_metrics(metrics);
  auto best = Resolve(RankSelector::Policy(RankPolicy::kBest), *adapter);
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->rank, 3);
  auto smallest = Resolve(
      RankSelector::Policy(RankPolicy::kSmallestWithinTolerance), *adapter);
  ASSERT_TRUE(smallest.ok()) << smallest.status();
  EXPECT_EQ(smallest->rank, 2);
  // The adapter's own table is left as it was.
  EXPECT_FALSE(adapter->rank_metrics().best_rank.has_value());
}

TEST_F(RankResolverTest, RecommendationOutsideTheRangeIsRefused) {
  auto adapter = AdapterWithoutTable(1, 4);
  ASSERT_NE(adapter, nullptr);
  RankMetrics metrics;
  metrics.values = {{1, 0.5}, {8, 0.9}};
  metrics.best_rank = 8;
  adapter->set_rank_metrics(metrics);
  auto best = Resolve(RankSelector::Policy(RankPolicy::kBest), *adapter);
  EXPECT_EQ(best.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(best.status().message(), HasSubstr("[1, 4]"));
}

TEST(ParseRankPolicyTest, KnownAndUnknownNames) {
  EXPECT_EQ(*ParseRankPolicy("max"), RankPolicy::kMax);
  EXPECT_EQ(*ParseRankPolicy("best"), RankPolicy::kBest);
  EXPECT_EQ(*ParseRankPolicy("smallest-within-tolerance"),
            RankPolicy::kSmallestWithinTolerance);
  EXPECT_EQ(*ParseRankPolicy("smallest_within_tolerance"),
            RankPolicy::kSmallestWithinTolerance);
  for (const char* bad : {"", "fastest", "smallest", "MAX "}) {
    auto parsed = ParseRankPolicy(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr("max, best, smallest-within-tolerance"));
  }
  for (RankPolicy policy : {RankPolicy::kMax, RankPolicy::kBest,
                            RankPolicy::kSmallestWithinTolerance}) {
    EXPECT_EQ(*ParseRankPolicy(RankPolicyName(policy)), policy);
  }
}

TEST(DeviceProfilesTest, ParsesGoodEntries) {
  std::vector<std::string> entries = {"phone=2", " edge = 4 ", "server=64"};
  auto profiles = DeviceProfiles::Parse(entries);
  ASSERT_TRUE(profiles.ok()) << profiles.status();
  EXPECT_EQ(profiles->Find("phone"), 2);
  EXPECT_EQ(profiles->Find("edge"), 4);
  EXPECT_EQ(profiles->Find("server"), 64);
  EXPECT_EQ(profiles->Find("tablet"), std::nullopt);
  EXPECT_EQ(profiles->entries().size(), 3u);
  EXPECT_TRUE(DeviceProfiles::Parse({}).ok());
}

TEST(DeviceProfilesTest, RefusesBadEntries) {
  for (const std::string& bad :
       {std::string("phone"), std::string("=2"), std::string("phone="),
        std::string("phone=two"), std::string("phone=0"),
        std::string("phone=-1"), std::string("phone=2.5")}) {
    auto parsed = DeviceProfiles::Parse(std::vector<std::string>{bad});
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  auto repeated =
      DeviceProfiles::Parse(std::vector<std::string>{"phone=2", "phone=4"});
  EXPECT_EQ(repeated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(repeated.status().message(), HasSubstr("phone"));

  DeviceProfiles profiles;
  EXPECT_TRUE(profiles.Add("phone", 2).ok());
  EXPECT_EQ(profiles.Add("phone", 3).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(profiles.Add("", 3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(profiles.Add("edge", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(profiles.Find("phone"), 2);
}

}  // namespace
}  // namespace dylora::serving
