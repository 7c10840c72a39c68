// Batching: dynamic padding, the seeded epoch order and length grouping.
#include "trainer/data/batches.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "gtest/gtest.h"

namespace dylora {
namespace {

// `n` examples of lengths drawn from a long-tailed distribution, as SST-2's
// phrases: mostly short, a few long.
TokenizedDataset Phrases(size_t n) {
  TokenizedDataset data;
  data.spec = *GlueTaskByName("sst2");
  std::mt19937 rng(7);
  std::geometric_distribution<int> extra(0.08);
  for (size_t i = 0; i < n; ++i) {
    TokenizedExample e;
    const int len = 3 + std::min(extra(rng), 60);
    e.ids.assign(len, 5);
    e.type_ids.assign(len, 0);
    e.label = static_cast<float>(i % 2);
    data.examples.push_back(std::move(e));
  }
  return data;
}

// Padded tokens over real tokens when `order` is cut into batches.
double PaddingRatio(const std::vector<size_t>& order,
                    const TokenizedDataset& data, size_t batch) {
  double padded = 0, real = 0;
  for (size_t start = 0; start < order.size(); start += batch) {
    const size_t end = std::min(order.size(), start + batch);
    size_t longest = 0;
    for (size_t i = start; i < end; ++i) {
      longest = std::max(longest, data.examples[order[i]].ids.size());
      real += static_cast<double>(data.examples[order[i]].ids.size());
    }
    padded += static_cast<double>(longest * (end - start));
  }
  return padded / real;
}

TEST(BatchesTest, MakeBatchPadsToTheLongestRowOnly) {
  TokenizedDataset data = Phrases(8);
  const std::vector<size_t> indices = {0, 3, 5};
  Batch batch = MakeBatch(data, indices);
  size_t longest = 0;
  for (size_t i : indices)
    longest = std::max(longest, data.examples[i].ids.size());
  EXPECT_EQ(batch.inputs.input_ids.size(1), static_cast<int64_t>(longest));
  for (size_t row = 0; row < indices.size(); ++row) {
    EXPECT_EQ(batch.inputs.attention_mask[row].sum().item<int64_t>(),
              static_cast<int64_t>(data.examples[indices[row]].ids.size()));
  }
}

TEST(BatchesTest, EpochOrderIsASeededPermutation) {
  const auto a = EpochOrder(100, 3, 0);
  EXPECT_EQ(a, EpochOrder(100, 3, 0));
  EXPECT_NE(a, EpochOrder(100, 3, 1));
  EXPECT_NE(a, EpochOrder(100, 4, 0));
  EXPECT_EQ(std::set<size_t>(a.begin(), a.end()).size(), 100u);
}

TEST(BatchesTest, GroupByLengthKeepsEveryExampleAndCutsPadding) {
  TokenizedDataset data = Phrases(5000);
  const size_t batch = 32;
  const auto order = EpochOrder(data.examples.size(), 1, 0);
  const auto grouped = GroupByLength(order, data, batch, 1, 0);
  // The same examples, each once.
  std::vector<size_t> sorted = grouped;
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_t> all(data.examples.size());
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);
  // Examples stay within their megabatch of the shuffled order.
  const size_t mega = batch * kBatchesPerMegabatch;
  for (size_t start = 0; start < order.size(); start += mega) {
    const size_t end = std::min(order.size(), start + mega);
    std::set<size_t> before(order.begin() + start, order.begin() + end);
    std::set<size_t> after(grouped.begin() + start, grouped.begin() + end);
    EXPECT_EQ(before, after) << "megabatch at " << start;
  }
  // Far less padding than random batches (which pad more than 2x here).
  const double random_ratio = PaddingRatio(order, data, batch);
  const double grouped_ratio = PaddingRatio(grouped, data, batch);
  EXPECT_GT(random_ratio, 2.0);
  EXPECT_LT(grouped_ratio, 1.2);
  // Deterministic in (seed, epoch); batches of a megabatch are not simply
  // longest-first.
  EXPECT_EQ(grouped, GroupByLength(order, data, batch, 1, 0));
  EXPECT_NE(grouped, GroupByLength(order, data, batch, 1, 1));
  bool decreasing = true;
  for (size_t b = batch; b < mega; b += batch) {
    decreasing &= data.examples[grouped[b]].ids.size() <=
                  data.examples[grouped[b - batch]].ids.size();
  }
  EXPECT_FALSE(decreasing);
}

}  // namespace
}  // namespace dylora
