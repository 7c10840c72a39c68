#include "server/engine/engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/adapter/adapter_hooks.h"
#include "core/adapter/adapter_io.h"
#include "core/model/encoder.h"
#include "core/model/pooling.h"
#include "core/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/server_metrics.h"
#include "tests/test_paths.h"

namespace dylora::serving {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string AdapterFixtures() {
  return dylora::testing::FixturesDir() + "/adapter";
}

// The tiny BERT backbone and the dylora_r8 adapter served as "a" v1.
class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto encoder = Encoder::Load(AdapterFixtures() + "/tiny-bert");
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    encoder_ = std::shared_ptr<const Encoder>(std::move(*encoder));
    auto loaded = LoadAdapter(AdapterFixtures() + "/dylora_r8", *encoder_);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    auto on_device = (*loaded)->To(encoder_->device(), encoder_->dtype());
    ASSERT_TRUE(on_device.ok()) << on_device.status();
    auto head = (*on_device)->BuildHead(*encoder_);
    ASSERT_TRUE(head.ok()) << head.status();
    served_ = std::make_unique<ServedAdapter>(ServedAdapter{
        .name = "a",
        .version = 1,
        .path = AdapterFixtures() + "/dylora_r8",
        .adapter = std::shared_ptr<const DyLoraAdapter>(std::move(*on_device)),
        .head = std::move(*head),
    });
  }

  std::unique_ptr<Engine> MakeEngine(int64_t merge_after_rows,
                                     bool force_truncated = false,
                                     ServerMetrics* metrics = nullptr) {
    EngineOptions options;
    options.merge_after_rows = merge_after_rows;
    options.force_truncated = force_truncated;
    return std::make_unique<Engine>(encoder_, options, metrics);
  }

  // Rows of different lengths (ids < the fixture's vocabulary of 100).
  static std::vector<EngineRow> Rows(const std::vector<int64_t>& ranks) {
    std::vector<EngineRow> rows;
    for (size_t i = 0; i < ranks.size(); ++i) {
      EngineRow row;
      const size_t length = 3 + (i * 5) % 11;
      for (size_t t = 0; t < length; ++t) {
        row.ids.push_back(static_cast<int32_t>((7 * i + 13 * t + 1) % 100));
        row.type_ids.push_back(t >= length / 2 ? 1 : 0);
      }
      row.rank = ranks[i];
      rows.push_back(std::move(row));
    }
    return rows;
  }

  static std::vector<const EngineRow*> Pointers(
      const std::vector<EngineRow>& rows) {
    std::vector<const EngineRow*> pointers;
    for (const EngineRow& row : rows) pointers.push_back(&row);
    return pointers;
  }

  // The same batch padded by hand: [rows, longest], pad 0, mask 1/0.
  static EncoderInputs Inputs(const std::vector<EngineRow>& rows) {
    size_t longest = 0;
    for (const EngineRow& row : rows)
      longest = std::max(longest, row.ids.size());
    const int64_t n = static_cast<int64_t>(rows.size());
    const int64_t s = static_cast<int64_t>(longest);
    EncoderInputs inputs{at::zeros({n, s}, at::kLong),
                         at::zeros({n, s}, at::kLong),
                         at::zeros({n, s}, at::kLong)};
    for (int64_t r = 0; r < n; ++r) {
      for (size_t t = 0; t < rows[r].ids.size(); ++t) {
        inputs.input_ids[r][t] = rows[r].ids[t];
        inputs.token_type_ids[r][t] = rows[r].type_ids[t];
        inputs.attention_mask[r][t] = 1;
      }
    }
    return inputs;
  }

  static at::Tensor AsTensor(const EngineOutput& output) {
    const int64_t rows = static_cast<int64_t>(output.values.size()) /
                         std::max<int64_t>(output.width, 1);
    return at::tensor(output.values, at::kFloat).reshape({rows, output.width});
  }

  static double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  }

  std::shared_ptr<const Encoder> encoder_;
  std::unique_ptr<ServedAdapter> served_;
};

TEST_F(EngineTest, TruncatedSingleRankMatchesAdapterHook) {
  auto engine = MakeEngine(/*merge_after_rows=*/0);
  for (int64_t rank = 1; rank <= 8; ++rank) {
    const std::vector<EngineRow> rows = Rows({rank, rank, rank, rank});
    auto output = engine->Run(served_.get(), Pointers(rows));
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_EQ(output->path, ExecutionPath::kTruncated);
    EXPECT_EQ(output->width, 3);
    ASSERT_EQ(output->values.size(), 12u);

    c10::InferenceMode inference;
    auto hook = AdapterHook::Create(*served_->adapter, RankSpec::Single(rank));
    ASSERT_TRUE(hook.ok()) << hook.status();
    auto hidden = encoder_->Forward(Inputs(rows), hook->get());
    ASSERT_TRUE(hidden.ok()) << hidden.status();
    auto logits = served_->head.Forward(*hidden);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_LE(MaxAbsDiff(AsTensor(*output), *logits), 1e-5) << "rank " << rank;
  }
}

TEST_F(EngineTest, MergedPathEqualsTruncatedPath) {
  auto merged_engine = MakeEngine(/*merge_after_rows=*/0);
  auto truncated_engine =
      MakeEngine(/*merge_after_rows=*/0, /*force_truncated=*/true);
  ASSERT_TRUE(merged_engine->Prewarm(*served_, {1, 2, 3, 4, 5, 6, 7, 8}).ok());
  ASSERT_TRUE(
      truncated_engine->Prewarm(*served_, {1, 2, 3, 4, 5, 6, 7, 8}).ok());
  for (int64_t rank = 1; rank <= 8; ++rank) {
    const std::vector<EngineRow> rows = Rows({rank, rank, rank});
    auto merged = merged_engine->Run(served_.get(), Pointers(rows));
    auto truncated = truncated_engine->Run(served_.get(), Pointers(rows));
    ASSERT_TRUE(merged.ok()) << merged.status();
    ASSERT_TRUE(truncated.ok()) << truncated.status();
    EXPECT_EQ(merged->path, ExecutionPath::kMerged);
    EXPECT_EQ(truncated->path, ExecutionPath::kTruncated);
    EXPECT_EQ(merged->width, truncated->width);
    EXPECT_LE(MaxAbsDiff(AsTensor(*merged), AsTensor(*truncated)), 1e-4)
        << "rank " << rank;
  }
  // Different ranks really give different outputs (the test can fail).
  const std::vector<EngineRow> low = Rows({1, 1});
  const std::vector<EngineRow> high = Rows({8, 8});
  auto at_low = merged_engine->Run(served_.get(), Pointers(low));
  auto at_high = merged_engine->Run(served_.get(), Pointers(high));
  ASSERT_TRUE(at_low.ok() && at_high.ok());
  EXPECT_GT(MaxAbsDiff(AsTensor(*at_low), AsTensor(*at_high)), 1e-4);
}

TEST_F(EngineTest, MixedRanksMatchEachRowAlone) {
  auto engine = MakeEngine(/*merge_after_rows=*/1);
  const std::vector<int64_t> ranks = {1, 8, 3, 5, 8, 2};
  const std::vector<EngineRow> rows = Rows(ranks);
  auto batch = engine->Run(served_.get(), Pointers(rows));
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->path, ExecutionPath::kTruncated);
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());
  const at::Tensor together = AsTensor(*batch);
  ASSERT_EQ(together.size(0), static_cast<int64_t>(ranks.size()));

  auto alone_engine =
      MakeEngine(/*merge_after_rows=*/0, /*force_truncated=*/true);
  for (size_t i = 0; i < rows.size(); ++i) {
    auto alone = alone_engine->Run(served_.get(), {&rows[i]});
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_LE(MaxAbsDiff(together[i].unsqueeze(0), AsTensor(*alone)), 1e-5)
        << "row " << i << " at rank " << ranks[i];
  }
}

TEST_F(EngineTest, MergesAfterEnoughRows) {
  ServerMetrics metrics;
  auto engine = MakeEngine(/*merge_after_rows=*/3, false, &metrics);
  const std::vector<EngineRow> one = Rows({4});
  std::vector<ExecutionPath> paths;
  for (int i = 0; i < 4; ++i) {
    auto output = engine->Run(served_.get(), Pointers(one));
    ASSERT_TRUE(output.ok()) << output.status();
    paths.push_back(output->path);
  }
  EXPECT_THAT(paths,
              ElementsAre(ExecutionPath::kTruncated, ExecutionPath::kTruncated,
                          ExecutionPath::kMerged, ExecutionPath::kMerged));
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(4));
  EXPECT_GT(engine->merge_cache().bytes(), 0);

  // A batch of three rows at a fresh rank reaches the threshold at once.
  const std::vector<EngineRow> three = Rows({6, 6, 6});
  auto output = engine->Run(served_.get(), Pointers(three));
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->path, ExecutionPath::kMerged);
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(4, 6));

  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dylora_merges_total 2"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="truncated"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="merged"} 5)"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_entries 2"));
}

TEST_F(EngineTest, NeverMergesOnDemandWhenThresholdIsZero) {
  auto engine = MakeEngine(/*merge_after_rows=*/0);
  const std::vector<EngineRow> rows = Rows({2, 2, 2, 2});
  for (int i = 0; i < 5; ++i) {
    auto output = engine->Run(served_.get(), Pointers(rows));
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_EQ(output->path, ExecutionPath::kTruncated);
  }
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());

  ASSERT_TRUE(engine->Prewarm(*served_, {2}).ok());
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(2));
  auto merged = engine->Run(served_.get(), Pointers(rows));
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->path, ExecutionPath::kMerged);
  const std::vector<EngineRow> other = Rows({3});
  auto truncated = engine->Run(served_.get(), Pointers(other));
  ASSERT_TRUE(truncated.ok()) << truncated.status();
  EXPECT_EQ(truncated->path, ExecutionPath::kTruncated);
}

TEST_F(EngineTest, ForgetDropsCacheAndCounters) {
  auto engine = MakeEngine(/*merge_after_rows=*/3);
  ASSERT_TRUE(engine->Prewarm(*served_, {2, 5}).ok());
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(2, 5));
  const std::vector<EngineRow> two = Rows({4, 4});
  auto output = engine->Run(served_.get(), Pointers(two));  // 2 rows counted
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(output->path, ExecutionPath::kTruncated);

  engine->Forget("a");
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());
  EXPECT_EQ(engine->merge_cache().entries(), 0);
  EXPECT_EQ(engine->merge_cache().bytes(), 0);
  // The counter at rank 4 restarted: one more row stays below 3.
  const std::vector<EngineRow> one = Rows({4});
  output = engine->Run(served_.get(), Pointers(one));
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(output->path, ExecutionPath::kTruncated);
  const std::vector<EngineRow> at_two = Rows({2});
  output = engine->Run(served_.get(), Pointers(at_two));
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(output->path, ExecutionPath::kTruncated);
}

TEST_F(EngineTest, PrewarmRejectsBadRankAndTooSmallCache) {
  auto engine = MakeEngine(/*merge_after_rows=*/0);
  EXPECT_EQ(engine->Prewarm(*served_, {9}).code(),
            absl::StatusCode::kInvalidArgument);
  EngineOptions tiny;
  tiny.merge_cache_bytes = 16;
  Engine small(encoder_, tiny, nullptr);
  EXPECT_EQ(small.Prewarm(*served_, {1}).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(EngineTest, RejectsBadInput) {
  auto engine = MakeEngine(/*merge_after_rows=*/1);
  auto empty = engine->Run(served_.get(), {});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);

  for (int64_t bad_rank : {0, 9, -1}) {
    std::vector<EngineRow> rows = Rows({2, bad_rank});
    auto output = engine->Run(served_.get(), Pointers(rows));
    EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument)
        << bad_rank;
    EXPECT_THAT(output.status().message(), HasSubstr("row 1"));
  }

  std::vector<EngineRow> mismatched = Rows({2, 2, 2});
  mismatched[2].type_ids.pop_back();
  auto output = engine->Run(served_.get(), Pointers(mismatched));
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(output.status().message(), HasSubstr("row 2"));

  std::vector<EngineRow> no_ids = Rows({2});
  no_ids[0].ids.clear();
  no_ids[0].type_ids.clear();
  output = engine->Run(nullptr, Pointers(no_ids));
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(output.status().message(), HasSubstr("row 0"));

  std::vector<EngineRow> out_of_vocab = Rows({2});
  out_of_vocab[0].ids[1] = 100;
  output = engine->Run(served_.get(), Pointers(out_of_vocab));
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(output.status().message(), HasSubstr("row 0"));
  out_of_vocab[0].ids[1] = 1;
  out_of_vocab[0].type_ids[1] = 2;
  output = engine->Run(served_.get(), Pointers(out_of_vocab));
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);

  std::vector<EngineRow> too_long = Rows({2});
  too_long[0].ids.assign(65, 5);
  too_long[0].type_ids.assign(65, 0);
  output = engine->Run(nullptr, Pointers(too_long));
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);

  // None of the failures cached anything.
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());
}

TEST_F(EngineTest, BackboneGivesUnitNormRowsOfHiddenWidth) {
  auto engine = MakeEngine(/*merge_after_rows=*/1);
  std::vector<EngineRow> rows = Rows({0, 0, 0});
  rows[1].rank = 5;  // ignored without an adapter
  auto output = engine->Run(nullptr, Pointers(rows));
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->path, ExecutionPath::kBackbone);
  EXPECT_EQ(output->width, encoder_->config().hidden_size);
  const at::Tensor embeddings = AsTensor(*output);
  ASSERT_EQ(embeddings.size(0), 3);
  EXPECT_TRUE(at::allclose(embeddings.norm(2, {1}), at::ones({3}), 1e-5, 1e-5));
  EXPECT_EQ(engine->merge_cache().entries(), 0);
}

// The real all-MiniLM-L6-v2: embeddings of a padded batch equal each
// sentence's own mean-pooled, normalised encoder output.
TEST(EngineMiniLmTest, BackboneMatchesMeanPooledEncoder) {
  const std::string model_dir = dylora::testing::ModelDir();
  auto loaded = Encoder::Load(model_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::shared_ptr<const Encoder> encoder(std::move(*loaded));
  auto tokenizer =
      Tokenizer::FromTokenizerJsonFile(model_dir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  tokenizer->set_padding(std::nullopt);  // tokenizer.json pads to 128

  const std::vector<std::string> sentences = {
      "A man is playing a guitar.",
      "The quick brown fox jumps over the lazy dog near the river bank."};
  std::vector<EngineRow> rows;
  for (const std::string& sentence : sentences) {
    auto encoding = tokenizer->Encode(sentence);
    ASSERT_TRUE(encoding.ok()) << encoding.status();
    rows.push_back(EngineRow{encoding->ids, encoding->type_ids, 0});
  }
  ASSERT_NE(rows[0].ids.size(), rows[1].ids.size());

  Engine engine(encoder, EngineOptions{}, nullptr);
  auto output = engine.Run(nullptr, {&rows[0], &rows[1]});
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->path, ExecutionPath::kBackbone);
  ASSERT_EQ(output->width, 384);
  const at::Tensor batch =
      at::tensor(output->values, at::kFloat).reshape({2, 384});

  c10::InferenceMode inference;
  for (int64_t i = 0; i < 2; ++i) {
    std::vector<int64_t> ids(rows[i].ids.begin(), rows[i].ids.end());
    std::vector<int64_t> types(rows[i].type_ids.begin(),
                               rows[i].type_ids.end());
    const int64_t n = static_cast<int64_t>(ids.size());
    EncoderInputs inputs{at::tensor(ids, at::kLong).reshape({1, n}),
                         at::tensor(types, at::kLong).reshape({1, n}),
                         at::ones({1, n}, at::kLong)};
    auto hidden = encoder->Forward(inputs);
    ASSERT_TRUE(hidden.ok()) << hidden.status();
    auto pooled = MeanPool(hidden->last_hidden_state, inputs.attention_mask);
    ASSERT_TRUE(pooled.ok()) << pooled.status();
    const at::Tensor expected =
        *pooled / pooled->norm(2, {1}, true).clamp_min(1e-12);
    const double diff = (batch[i] - expected[0]).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5) << "sentence " << i;
    EXPECT_NEAR(batch[i].norm().item<double>(), 1.0, 1e-5);
  }
  // Two different sentences are not the same embedding.
  EXPECT_LT((batch[0] * batch[1]).sum().item<double>(), 0.9);
}

}  // namespace
}  // namespace dylora::serving
