#include "server/engine/engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/adapter/adapter_hooks.h"
#include "core/adapter/adapter_io.h"
#include "core/model/encoder.h"
#include "core/model/packed_linears.h"
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

// Rows of one batch (ids < the fixture's vocabulary of 100, different
// lengths) and the rank of each.
struct TestRows {
  std::vector<TokenizedText> texts;
  std::vector<int64_t> ranks;

  std::vector<const TokenizedText*> Pointers() const {
    std::vector<const TokenizedText*> pointers;
    for (const TokenizedText& text : texts) pointers.push_back(&text);
    return pointers;
  }
  AdapterBatch On(std::shared_ptr<const ServedAdapter> adapter) const {
    return AdapterBatch{std::move(adapter), Pointers(), ranks};
  }
  BackboneBatch OnBackbone() const { return BackboneBatch{Pointers()}; }
  // Row i alone.
  TestRows Row(size_t i) const { return TestRows{{texts[i]}, {ranks[i]}}; }
};

TestRows Rows(const std::vector<int64_t>& ranks) {
  TestRows rows;
  for (size_t i = 0; i < ranks.size(); ++i) {
    TokenizedText text;
    const size_t length = 3 + (i * 5) % 11;
    for (size_t t = 0; t < length; ++t) {
      text.ids.push_back(static_cast<int32_t>((7 * i + 13 * t + 1) % 100));
      text.type_ids.push_back(t >= length / 2 ? 1 : 0);
    }
    rows.texts.push_back(std::move(text));
  }
  rows.ranks = ranks;
  return rows;
}

// The tiny BERT backbone and the dylora_r8 adapter served as "a" v1.
class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto encoder = Encoder::Load(AdapterFixtures() + "/tiny-bert");
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    encoder_ = std::shared_ptr<const Encoder>(std::move(*encoder));
    served_ = Serve("a", 1);
    ASSERT_NE(served_, nullptr);
  }

  std::shared_ptr<const ServedAdapter> Serve(const std::string& name,
                                             int64_t version) {
    auto loaded = LoadAdapter(AdapterFixtures() + "/dylora_r8", *encoder_);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (!loaded.ok()) return nullptr;
    auto on_device = (*loaded)->To(encoder_->device(), encoder_->dtype());
    EXPECT_TRUE(on_device.ok()) << on_device.status();
    auto head = (*on_device)->BuildHead(*encoder_);
    EXPECT_TRUE(head.ok()) << head.status();
    if (!on_device.ok() || !head.ok()) return nullptr;
    return std::make_shared<const ServedAdapter>(ServedAdapter{
        .name = name,
        .version = version,
        .path = AdapterFixtures() + "/dylora_r8",
        .adapter = std::shared_ptr<const DyLoraAdapter>(std::move(*on_device)),
        .head = std::move(*head),
    });
  }

  std::unique_ptr<Engine> MakeEngine(int64_t merge_after,
                                     bool always_truncate = false,
                                     ServerMetrics* metrics = nullptr,
                                     MergeFunction merge = nullptr) {
    EngineOptions options;
    options.merge_after = merge_after;
    options.always_truncate = always_truncate;
    return std::make_unique<Engine>(encoder_, options, metrics,
                                    std::move(merge));
  }

  // An engine on the backbone's packed linears, as dylora-serve runs it
  // (null, failing the test, where the kernel is missing).
  std::unique_ptr<Engine> MakePackedEngine(Precision precision,
                                           bool always_truncate) {
    auto packed = PackEncoderLinears(*encoder_, precision);
    EXPECT_TRUE(packed.ok()) << packed.status();
    if (!packed.ok()) return nullptr;
    EngineOptions options;
    options.precision = precision;
    options.merge_after = 0;
    options.always_truncate = always_truncate;
    return std::make_unique<Engine>(encoder_, options, nullptr, nullptr,
                                    *std::move(packed));
  }

  // Merges every rank after one row, each merge announcing `started` and
  // then holding until `release` (merges run one at a time on the merger's
  // thread).
  std::unique_ptr<Engine> EngineWithHeldMerges(absl::Notification& started,
                                               absl::Notification& release) {
    return MakeEngine(/*merge_after=*/1, false, nullptr,
                      [&started, &release, real = RealMerge()](
                          const ServedAdapter& adapter, int64_t rank) {
                        if (!started.HasBeenNotified()) started.Notify();
                        release.WaitForNotification();
                        return real(adapter, rank);
                      });
  }

  // The real merge, as the engine computes it.
  MergeFunction RealMerge() const {
    return [encoder = encoder_](const ServedAdapter& adapter,
                                int64_t rank) -> absl::StatusOr<MergedEntry> {
      c10::InferenceMode inference;
      auto merged = MergedWeights(*adapter.adapter, *encoder, rank);
      if (!merged.ok()) return merged.status();
      int64_t bytes = 0;
      for (const auto& [id, w] : *merged)
        bytes += static_cast<int64_t>(w.nbytes());
      return MergedEntry{
          std::make_shared<const MergedWeightsHook>(*std::move(merged)), bytes};
    };
  }

  // The same batch padded by hand: [rows, longest], pad 0, mask 1/0.
  static EncoderInputs Inputs(const TestRows& rows) {
    size_t longest = 0;
    for (const TokenizedText& row : rows.texts)
      longest = std::max(longest, row.ids.size());
    const int64_t n = static_cast<int64_t>(rows.texts.size());
    const int64_t s = static_cast<int64_t>(longest);
    EncoderInputs inputs{at::zeros({n, s}, at::kLong),
                         at::zeros({n, s}, at::kLong),
                         at::zeros({n, s}, at::kLong)};
    for (int64_t r = 0; r < n; ++r) {
      for (size_t t = 0; t < rows.texts[r].ids.size(); ++t) {
        inputs.input_ids[r][t] = rows.texts[r].ids[t];
        inputs.token_type_ids[r][t] = rows.texts[r].type_ids[t];
        inputs.attention_mask[r][t] = 1;
      }
    }
    return inputs;
  }

  static at::Tensor AsTensor(const BatchOutput& output) {
    const int64_t rows = static_cast<int64_t>(output.values.size()) /
                         std::max<int64_t>(output.width, 1);
    return at::tensor(output.values, at::kFloat).reshape({rows, output.width});
  }

  static double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  }

  // The path of one run of `rows` on `engine` (fails the test on an error).
  ExecutionPath PathOf(Engine& engine, const TestRows& rows) {
    auto output = engine.Run(rows.On(served_));
    EXPECT_TRUE(output.ok()) << output.status();
    return output.ok() ? output->path : ExecutionPath::kBackbone;
  }

  std::shared_ptr<const Encoder> encoder_;
  std::shared_ptr<const ServedAdapter> served_;
};

TEST_F(EngineTest, TruncatedSingleRankMatchesAdapterHook) {
  auto engine = MakeEngine(/*merge_after=*/0);
  for (int64_t rank = 1; rank <= 8; ++rank) {
    const TestRows rows = Rows({rank, rank, rank, rank});
    auto output = engine->Run(rows.On(served_));
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
  auto merged_engine = MakeEngine(/*merge_after=*/0);
  auto truncated_engine =
      MakeEngine(/*merge_after=*/0, /*always_truncate=*/true);
  ASSERT_TRUE(merged_engine->Prewarm(served_, {1, 2, 3, 4, 5, 6, 7, 8}).ok());
  ASSERT_TRUE(
      truncated_engine->Prewarm(served_, {1, 2, 3, 4, 5, 6, 7, 8}).ok());
  for (int64_t rank = 1; rank <= 8; ++rank) {
    const TestRows rows = Rows({rank, rank, rank});
    auto merged = merged_engine->Run(rows.On(served_));
    auto truncated = truncated_engine->Run(rows.On(served_));
    ASSERT_TRUE(merged.ok()) << merged.status();
    ASSERT_TRUE(truncated.ok()) << truncated.status();
    EXPECT_EQ(merged->path, ExecutionPath::kMerged);
    EXPECT_EQ(truncated->path, ExecutionPath::kTruncated);
    EXPECT_EQ(merged->width, truncated->width);
    EXPECT_LE(MaxAbsDiff(AsTensor(*merged), AsTensor(*truncated)), 1e-4)
        << "rank " << rank;
  }
  // Different ranks really give different outputs (the test can fail).
  auto at_low = merged_engine->Run(Rows({1, 1}).On(served_));
  auto at_high = merged_engine->Run(Rows({8, 8}).On(served_));
  ASSERT_TRUE(at_low.ok() && at_high.ok());
  EXPECT_GT(MaxAbsDiff(AsTensor(*at_low), AsTensor(*at_high)), 1e-4);
}

// Packed fp32 (oneDNN's reordered weights, dylora-serve's default): the
// merged path (W0 + (alpha/b) up down, reordered once per rank) and the
// truncated one (reordered W0, plain low-rank term) compute what the plain
// engine computes, to float rounding, at every rank and for mixed ranks.
TEST_F(EngineTest, PackedFp32PathsMatchThePlainEngine) {
  if (!CheckPackedLinearsSupported(Precision::kFp32, encoder_->device(),
                                   encoder_->dtype())
           .ok()) {
    GTEST_SKIP() << "LibTorch has no oneDNN kernels here";
  }
  auto merged_engine = MakePackedEngine(Precision::kFp32, false);
  auto truncated_engine = MakePackedEngine(Precision::kFp32, true);
  auto plain_engine = MakeEngine(/*merge_after=*/0, /*always_truncate=*/true);
  ASSERT_NE(merged_engine, nullptr);
  ASSERT_NE(truncated_engine, nullptr);
  ASSERT_TRUE(merged_engine->Prewarm(served_, {1, 2, 3, 4, 5, 6, 7, 8}).ok());
  EXPECT_GT(merged_engine->merge_cache().bytes(), 0);
  for (int64_t rank = 1; rank <= 8; ++rank) {
    const TestRows rows = Rows({rank, rank, rank});
    auto merged = merged_engine->Run(rows.On(served_));
    auto truncated = truncated_engine->Run(rows.On(served_));
    auto plain = plain_engine->Run(rows.On(served_));
    ASSERT_TRUE(merged.ok() && truncated.ok() && plain.ok());
    EXPECT_EQ(merged->path, ExecutionPath::kMerged);
    EXPECT_EQ(truncated->path, ExecutionPath::kTruncated);
    EXPECT_LE(MaxAbsDiff(AsTensor(*merged), AsTensor(*plain)), 1e-4)
        << "rank " << rank;
    EXPECT_LE(MaxAbsDiff(AsTensor(*truncated), AsTensor(*plain)), 1e-4)
        << "rank " << rank;
  }
  const TestRows mixed = Rows({1, 8, 3, 5});
  auto together = truncated_engine->Run(mixed.On(served_));
  auto plain_together = plain_engine->Run(mixed.On(served_));
  ASSERT_TRUE(together.ok() && plain_together.ok());
  EXPECT_LE(MaxAbsDiff(AsTensor(*together), AsTensor(*plain_together)), 1e-4);
}

// int8 (fbgemm): the merged path (W0 + (alpha/b) up down, quantized once
// per rank) and the truncated one (int8 W0, fp32 low-rank term) agree with
// each other and with fp32 within quantization error, at every rank and
// for mixed ranks; and int8 really differs from fp32 (the test can fail).
TEST_F(EngineTest, Int8PathsAgreeWithEachOtherAndWithFp32) {
  if (!CheckPackedLinearsSupported(Precision::kInt8, encoder_->device(),
                                   encoder_->dtype())
           .ok()) {
    GTEST_SKIP() << "fbgemm is not available on this CPU";
  }
  auto merged_engine = MakePackedEngine(Precision::kInt8, false);
  auto truncated_engine = MakePackedEngine(Precision::kInt8, true);
  auto fp32_engine = MakeEngine(/*merge_after=*/0, /*always_truncate=*/true);
  ASSERT_NE(merged_engine, nullptr);
  ASSERT_NE(truncated_engine, nullptr);
  ASSERT_TRUE(merged_engine->Prewarm(served_, {1, 2, 3, 4, 5, 6, 7, 8}).ok());
  EXPECT_GT(merged_engine->merge_cache().bytes(), 0);
  double largest_int8_error = 0;
  for (int64_t rank = 1; rank <= 8; ++rank) {
    const TestRows rows = Rows({rank, rank, rank});
    auto merged = merged_engine->Run(rows.On(served_));
    auto truncated = truncated_engine->Run(rows.On(served_));
    auto fp32 = fp32_engine->Run(rows.On(served_));
    ASSERT_TRUE(merged.ok() && truncated.ok() && fp32.ok());
    EXPECT_EQ(merged->path, ExecutionPath::kMerged);
    EXPECT_EQ(truncated->path, ExecutionPath::kTruncated);
    const at::Tensor reference = AsTensor(*fp32);
    const double scale = reference.abs().max().item<double>();
    const double merged_error = MaxAbsDiff(AsTensor(*merged), reference);
    const double truncated_error = MaxAbsDiff(AsTensor(*truncated), reference);
    EXPECT_LE(merged_error, 0.05 * scale) << "rank " << rank;
    EXPECT_LE(truncated_error, 0.05 * scale) << "rank " << rank;
    EXPECT_LE(MaxAbsDiff(AsTensor(*merged), AsTensor(*truncated)), 0.05 * scale)
        << "rank " << rank;
    largest_int8_error = std::max(largest_int8_error, truncated_error);
  }
  EXPECT_GT(largest_int8_error, 0);
  // Mixed ranks in one int8 batch stay within int8 error of fp32. (Not
  // bit-equal to each row alone: activations are quantized per batch, so an
  // int8 row depends slightly on the others' ranges, as in any dynamic
  // int8 runtime.)
  const TestRows mixed = Rows({1, 8, 3, 5});
  auto together = truncated_engine->Run(mixed.On(served_));
  auto fp32_together = fp32_engine->Run(mixed.On(served_));
  ASSERT_TRUE(together.ok() && fp32_together.ok());
  const double scale = AsTensor(*fp32_together).abs().max().item<double>();
  EXPECT_LE(MaxAbsDiff(AsTensor(*together), AsTensor(*fp32_together)),
            0.05 * scale);
}

TEST_F(EngineTest, MixedRanksMatchEachRowAlone) {
  auto engine = MakeEngine(/*merge_after=*/1);
  const std::vector<int64_t> ranks = {1, 8, 3, 5, 8, 2};
  const TestRows rows = Rows(ranks);
  auto batch = engine->Run(rows.On(served_));
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->path, ExecutionPath::kTruncated);
  engine->WaitForMerges();
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());  // mixed: no merge
  const at::Tensor together = AsTensor(*batch);
  ASSERT_EQ(together.size(0), static_cast<int64_t>(ranks.size()));

  auto alone_engine = MakeEngine(/*merge_after=*/0, /*always_truncate=*/true);
  for (size_t i = 0; i < ranks.size(); ++i) {
    auto alone = alone_engine->Run(rows.Row(i).On(served_));
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_LE(MaxAbsDiff(together[i].unsqueeze(0), AsTensor(*alone)), 1e-5)
        << "row " << i << " at rank " << ranks[i];
  }
}

TEST_F(EngineTest, AHotRankIsMergedInTheBackgroundAndThenServedMerged) {
  ServerMetrics metrics;
  auto engine = MakeEngine(/*merge_after=*/3, false, &metrics);
  const TestRows one = Rows({4});
  // The third row crosses the threshold: its batch still runs truncated and
  // the merge is queued; once it is done, rank 4 runs merged.
  EXPECT_EQ(PathOf(*engine, one), ExecutionPath::kTruncated);
  EXPECT_EQ(PathOf(*engine, one), ExecutionPath::kTruncated);
  EXPECT_EQ(PathOf(*engine, one), ExecutionPath::kTruncated);
  engine->WaitForMerges();
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(4));
  EXPECT_EQ(PathOf(*engine, one), ExecutionPath::kMerged);
  EXPECT_GT(engine->merge_cache().bytes(), 0);

  // Three rows at a fresh rank reach the threshold at once.
  const TestRows three = Rows({6, 6, 6});
  EXPECT_EQ(PathOf(*engine, three), ExecutionPath::kTruncated);
  engine->WaitForMerges();
  EXPECT_EQ(PathOf(*engine, three), ExecutionPath::kMerged);
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(4, 6));

  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dylora_merges_total 2"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="truncated"} 6)"));
  EXPECT_THAT(text, HasSubstr(R"(dylora_rows_total{path="merged"} 4)"));
  EXPECT_THAT(text, HasSubstr("dylora_merge_cache_entries 2"));
}

TEST_F(EngineTest, ASlowMergeDoesNotDelayOtherBatches) {
  absl::Notification merge_started, release_merge;
  auto engine = EngineWithHeldMerges(merge_started, release_merge);
  EXPECT_EQ(PathOf(*engine, Rows({2})), ExecutionPath::kTruncated);
  ASSERT_TRUE(merge_started.WaitForNotificationWithTimeout(absl::Seconds(30)));

  // The merge of rank 2 is stuck; batches at rank 2, at another rank and on
  // the backbone all finish meanwhile, truncated.
  absl::Notification batches_done;
  std::vector<ExecutionPath> paths;
  std::thread batches([&] {
    for (const TestRows& rows : {Rows({2, 2}), Rows({5}), Rows({2})}) {
      auto output = engine->Run(rows.On(served_));
      paths.push_back(output.ok() ? output->path : ExecutionPath::kBackbone);
    }
    auto backbone = engine->Run(Rows({0}).OnBackbone());
    paths.push_back(backbone.ok() ? backbone->path : ExecutionPath::kMerged);
    batches_done.Notify();
  });
  const bool finished =
      batches_done.WaitForNotificationWithTimeout(absl::Seconds(60));
  release_merge.Notify();
  batches.join();
  ASSERT_TRUE(finished) << "batches waited for the merge";
  EXPECT_THAT(paths,
              ElementsAre(ExecutionPath::kTruncated, ExecutionPath::kTruncated,
                          ExecutionPath::kTruncated, ExecutionPath::kBackbone));

  engine->WaitForMerges();
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(2, 5));
  EXPECT_EQ(PathOf(*engine, Rows({2})), ExecutionPath::kMerged);
}

TEST_F(EngineTest, NeverMergesOnDemandWhenThresholdIsZero) {
  auto engine = MakeEngine(/*merge_after=*/0);
  const TestRows rows = Rows({2, 2, 2, 2});
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(PathOf(*engine, rows), ExecutionPath::kTruncated);
  }
  engine->WaitForMerges();
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());

  ASSERT_TRUE(engine->Prewarm(served_, {2}).ok());
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(2));
  EXPECT_EQ(PathOf(*engine, rows), ExecutionPath::kMerged);
  EXPECT_EQ(PathOf(*engine, Rows({3})), ExecutionPath::kTruncated);
}

TEST_F(EngineTest, ForgetDropsCacheAndCountersOfThatVersion) {
  auto engine = MakeEngine(/*merge_after=*/3);
  ASSERT_TRUE(engine->Prewarm(served_, {2, 5}).ok());
  EXPECT_THAT(engine->CachedRanks(*served_), ElementsAre(2, 5));
  EXPECT_EQ(PathOf(*engine, Rows({4, 4})),
            ExecutionPath::kTruncated);  // 2 rows counted

  engine->Forget(*served_);
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());
  EXPECT_EQ(engine->merge_cache().entries(), 0);
  EXPECT_EQ(engine->merge_cache().bytes(), 0);
  // The counter at rank 4 is gone, and the forgotten version is never
  // merged again: not on demand, not by a pre-warm.
  EXPECT_EQ(PathOf(*engine, Rows({4, 4, 4})), ExecutionPath::kTruncated);
  engine->WaitForMerges();
  EXPECT_EQ(PathOf(*engine, Rows({4})), ExecutionPath::kTruncated);
  EXPECT_EQ(engine->Prewarm(served_, {2}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());

  // The next version of the name merges as usual.
  auto next = Serve("a", 2);
  ASSERT_NE(next, nullptr);
  ASSERT_TRUE(engine->Prewarm(next, {2}).ok());
  EXPECT_THAT(engine->CachedRanks(*next), ElementsAre(2));
}

TEST_F(EngineTest, AMergeFinishingAfterItsVersionIsForgottenIsDropped) {
  absl::Notification merge_started, release_merge;
  auto engine = EngineWithHeldMerges(merge_started, release_merge);
  EXPECT_EQ(PathOf(*engine, Rows({3})), ExecutionPath::kTruncated);
  ASSERT_TRUE(merge_started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  engine->Forget(*served_);  // replaced while its merge runs
  release_merge.Notify();
  engine->WaitForMerges();
  EXPECT_THAT(engine->CachedRanks(*served_), IsEmpty());
  EXPECT_EQ(engine->merge_cache().entries(), 0);
}

TEST_F(EngineTest, PrewarmRejectsBadRankAndTooSmallCache) {
  auto engine = MakeEngine(/*merge_after=*/0);
  EXPECT_EQ(engine->Prewarm(served_, {9}).code(),
            absl::StatusCode::kInvalidArgument);
  EngineOptions tiny;
  tiny.merge_cache_mb = 0;  // no merge fits
  tiny.merge_after = 1;
  Engine small(encoder_, tiny, nullptr);
  EXPECT_EQ(small.Prewarm(served_, {1}).code(),
            absl::StatusCode::kResourceExhausted);
  // A rank too large for the cache is not merged again on demand.
  ServerMetrics metrics;
  Engine counted(encoder_, tiny, &metrics);
  for (int i = 0; i < 3; ++i) {
    auto output = counted.Run(Rows({1}).On(served_));
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_EQ(output->path, ExecutionPath::kTruncated);
    counted.WaitForMerges();
  }
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dylora_merges_total 1"));
}

TEST_F(EngineTest, BackboneGivesUnitNormRowsOfHiddenWidth) {
  auto engine = MakeEngine(/*merge_after=*/1);
  auto output = engine->Run(Rows({0, 0, 0}).OnBackbone());
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
  std::vector<TokenizedText> rows;
  for (const std::string& sentence : sentences) {
    auto encoding = tokenizer->Encode(sentence);
    ASSERT_TRUE(encoding.ok()) << encoding.status();
    rows.push_back(TokenizedText{encoding->ids, encoding->type_ids});
  }
  ASSERT_NE(rows[0].ids.size(), rows[1].ids.size());

  Engine engine(encoder, EngineOptions{}, nullptr);
  auto output = engine.Run(BackboneBatch{{&rows[0], &rows[1]}});
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
