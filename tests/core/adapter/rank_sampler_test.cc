#include "core/adapter/rank_sampler.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

std::map<int64_t, int> Draw(RankSampler& sampler, int n) {
  std::map<int64_t, int> counts;
  for (int i = 0; i < n; ++i) ++counts[sampler.Sample()];
  return counts;
}

TEST(RankDistributionTest, ParseAndPrint) {
  auto u = RankDistribution::Parse("uniform");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->kind(), RankDistribution::Kind::kUniform);
  auto g = RankDistribution::Parse("geometric:0.15");
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ(g->p(), 0.15);
  EXPECT_EQ(g->ToString(), "geometric:0.15");
  EXPECT_EQ(*RankDistribution::Parse(g->ToString()), *g);
}

TEST(RankDistributionTest, ParseErrorsNameTheText) {
  for (const char* bad :
       {"", "Uniform", "geometric", "geometric:", "geometric:x", "geometric:0",
        "geometric:1.5", "geometric:-0.1", "normal"}) {
    auto d = RankDistribution::Parse(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(std::string(RankDistribution::Parse("normal").status().message()),
              HasSubstr("\"normal\""));
}

TEST(RankDistributionTest, GeometricProbabilities) {
  auto g = RankDistribution::Geometric(0.5);
  ASSERT_TRUE(g.ok());
  auto probs = g->Probabilities(2, 4);
  ASSERT_TRUE(probs.ok());
  // 0.5, 0.25, 0.125 normalised by 0.875.
  ASSERT_EQ(probs->size(), 3u);
  EXPECT_DOUBLE_EQ((*probs)[0], 0.5 / 0.875);
  EXPECT_DOUBLE_EQ((*probs)[1], 0.25 / 0.875);
  EXPECT_DOUBLE_EQ((*probs)[2], 0.125 / 0.875);
  EXPECT_FALSE(g->Probabilities(0, 4).ok());
  EXPECT_FALSE(g->Probabilities(5, 4).ok());
}

TEST(RankSamplerTest, UniformCountsWithinTolerance) {
  auto sampler = RankSampler::Create(RankDistribution::Uniform(), 1, 8, 123);
  ASSERT_TRUE(sampler.ok());
  const int n = 100000;
  auto counts = Draw(*sampler, n);
  ASSERT_EQ(counts.size(), 8u);
  for (auto [rank, count] : counts) {
    EXPECT_GE(rank, 1);
    EXPECT_LE(rank, 8);
    // Expected 12500, sd ~105: 5 sd.
    EXPECT_NEAR(count, n / 8.0, 525) << "rank " << rank;
  }
}

TEST(RankSamplerTest, GeometricCountsWithinTolerance) {
  auto dist = RankDistribution::Parse("geometric:0.3");
  ASSERT_TRUE(dist.ok());
  auto sampler = RankSampler::Create(*dist, 2, 6, 7);
  ASSERT_TRUE(sampler.ok());
  auto probs = *dist->Probabilities(2, 6);
  const int n = 100000;
  auto counts = Draw(*sampler, n);
  for (int64_t b = 2; b <= 6; ++b) {
    const double p = probs[b - 2];
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(counts[b], n * p, 5 * sd) << "rank " << b;
  }
  EXPECT_EQ(counts.count(1), 0u);
  EXPECT_EQ(counts.count(7), 0u);
  // Monotone decreasing: low ranks are favoured.
  for (int64_t b = 3; b <= 6; ++b) EXPECT_LT(counts[b], counts[b - 1]);
}

TEST(RankSamplerTest, SeededAndReproducible) {
  auto a = RankSampler::Create(RankDistribution::Uniform(), 1, 8, 99);
  auto b = RankSampler::Create(RankDistribution::Uniform(), 1, 8, 99);
  auto c = RankSampler::Create(RankDistribution::Uniform(), 1, 8, 100);
  std::vector<int64_t> sa, sb, sc;
  for (int i = 0; i < 1000; ++i) {
    sa.push_back(a->Sample());
    sb.push_back(b->Sample());
    sc.push_back(c->Sample());
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(RankSamplerTest, SingleRankRange) {
  auto s = RankSampler::Create(RankDistribution::Uniform(), 4, 4, 1);
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s->Sample(), 4);
}

}  // namespace
}  // namespace dylora
