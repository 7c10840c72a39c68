// Rank lists: sweep --ranks, bench --rank-mix, load --prewarm.
#include "client/rank_list.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RankListTest, ParsesRangesListsAndMixes) {
  auto range = ParseRankList("1-8", "--rank-mix");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(*range, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  auto list = ParseRankList("2,4,8", "--rank-mix");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(*list, ElementsAre(2, 4, 8));
  auto mixed = ParseRankList("1-3, 8", "--ranks");
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_THAT(*mixed, ElementsAre(1, 2, 3, 8));
  auto single = ParseRankList("4", "--prewarm");
  ASSERT_TRUE(single.ok());
  EXPECT_THAT(*single, ElementsAre(4));
  auto one_wide = ParseRankList("5-5", "--ranks");
  ASSERT_TRUE(one_wide.ok());
  EXPECT_THAT(*one_wide, ElementsAre(5));
}

TEST(RankListTest, DuplicatesWeightTheMix) {
  auto weighted = ParseRankList("2,2,8", "--rank-mix");
  ASSERT_TRUE(weighted.ok());
  EXPECT_THAT(*weighted, ElementsAre(2, 2, 8));
}

TEST(RankListTest, RefusesMalformedLists) {
  for (const char* text :
       {"", "0", "-1", "a", "1-", "8-1", "1-2-3", "2,,4", "1.5", "1-100000"}) {
    auto parsed = ParseRankList(text, "--rank-mix");
    EXPECT_FALSE(parsed.ok()) << "\"" << text << "\"";
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(parsed.status().message()),
                  HasSubstr("--rank-mix"));
    }
  }
}

TEST(RankListTest, FormatsConsecutiveRanksAsARange) {
  EXPECT_EQ(FormatRankList({1, 2, 3, 4}), "1-4");
  EXPECT_EQ(FormatRankList({2, 4, 8}), "2,4,8");
  EXPECT_EQ(FormatRankList({3}), "3");
  EXPECT_EQ(FormatRankList({1, 2}), "1,2");
}

}  // namespace
}  // namespace dylora::client
