// The training loop over the tiny BERT fixture with synthetic token data:
// frozen-mode updates over real optimizer steps, determinism, exact resume,
// and the NaN guard.
#include "trainer/training/trainer.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"
#include "trainer/eval/rank_eval.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Encoder> TinyBert() {
  auto encoder = Encoder::Load(testing::FixturesDir() + "/model/tiny-bert");
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return encoder.ok() ? *std::move(encoder) : nullptr;
}

// Random token sequences whose label is whether token 7 occurs: learnable.
TokenizedDataset SyntheticData(int n, bool regression = false) {
  TokenizedDataset data;
  data.spec = *GlueTaskByName(regression ? "stsb" : "sst2");
  std::mt19937 rng(3);
  for (int i = 0; i < n; ++i) {
    TokenizedExample e;
    const int len = 4 + static_cast<int>(rng() % 12);
    bool has7 = false;
    for (int t = 0; t < len; ++t) {
      const int id = 1 + static_cast<int>(rng() % 99);
      has7 |= id == 7;
      e.ids.push_back(id);
      e.type_ids.push_back(0);
    }
    e.label = has7 ? 1.0f : 0.0f;
    data.examples.push_back(std::move(e));
  }
  return data;
}

TrainerOptions SmallOptions() {
  TrainerOptions o;
  o.batch_size = 8;
  o.max_steps = 12;
  o.learning_rate = 1e-2;
  o.warmup_ratio = 0.0;
  o.seed = 11;
  // The tiny fixture's config declares no dropout; turn it on so that
  // determinism and resume cover the dropout generator too.
  o.hidden_dropout = 0.1;
  o.attention_dropout = 0.1;
  o.classifier_dropout = 0.1;
  return o;
}

std::vector<at::Tensor> Snapshot(const Trainer& trainer) {
  std::vector<at::Tensor> out;
  for (const auto& [id, f] : trainer.adapter().factors()) {
    out.push_back(f.down.detach().clone());
    out.push_back(f.up.detach().clone());
  }
  for (const auto& [name, t] : trainer.head().named_tensors()) {
    out.push_back(t.detach().clone());
  }
  return out;
}

void ExpectIdentical(const std::vector<at::Tensor>& a,
                     const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;
  }
}

TEST(TrainerTest, FrozenModeStepTouchesOnlyRowAndColumnB) {
  auto encoder = TinyBert();
  ASSERT_NE(encoder, nullptr);
  TokenizedDataset data = SyntheticData(64);
  auto trainer = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  std::set<int64_t> ranks_seen;
  for (int step = 0; step < 12; ++step) {
    std::vector<at::Tensor> before = Snapshot(**trainer);
    int64_t rank = 0;
    ASSERT_TRUE((*trainer)
                    ->RunSteps(1, [&](const StepReport& r) { rank = r.rank; })
                    .ok());
    ranks_seen.insert(rank);
    size_t k = 0;
    for (const auto& [id, f] : (*trainer)->adapter().factors()) {
      const at::Tensor& down_before = before[k++];
      const at::Tensor& up_before = before[k++];
      for (int64_t r = 0; r < f.down.size(0); ++r) {
        const bool down_same = at::equal(f.down[r], down_before[r]);
        const bool up_same =
            at::equal(f.up.select(1, r), up_before.select(1, r));
        if (r == rank - 1) {
          EXPECT_FALSE(down_same) << id.ModulePath() << " row " << r;
        } else {
          EXPECT_TRUE(down_same)
              << id.ModulePath() << " row " << r << " moved at rank " << rank;
          EXPECT_TRUE(up_same)
              << id.ModulePath() << " col " << r << " moved at rank " << rank;
        }
      }
    }
  }
  EXPECT_GT(ranks_seen.size(), 3u) << "the sampler should vary the rank";
}

TEST(TrainerTest, LoraTrainsEveryRankAtOnce) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(32);
  TrainerOptions options = SmallOptions();
  options.method = TrainMethod::kLora;
  auto trainer = Trainer::Create(*encoder, data, options);
  ASSERT_TRUE(trainer.ok());
  ASSERT_TRUE((*trainer)->RunSteps(1).ok());  // up is zero: only down...
  ASSERT_TRUE((*trainer)->RunSteps(1).ok());  // ... then every column moves
  std::vector<at::Tensor> before = Snapshot(**trainer);
  int64_t rank = 0;
  ASSERT_TRUE((*trainer)
                  ->RunSteps(1, [&](const StepReport& r) { rank = r.rank; })
                  .ok());
  EXPECT_EQ(rank, 8);
  const LoraFactors& f = (*trainer)->adapter().factors().front().second;
  for (int64_t r = 0; r < 8; ++r) {
    EXPECT_FALSE(at::equal(f.up.select(1, r), before[1].select(1, r))) << r;
  }
}

// LoRA+: the up factors step `up_lr_ratio` times as far. On the first step
// the up factors start at zero, both runs see the same gradients, and
// Adam's first update is lr * g / (|g| + eps): exactly proportional.
TEST(TrainerTest, UpLrRatioScalesOnlyTheUpFactorsStep) {
  auto encoder = TinyBert();
  ASSERT_NE(encoder, nullptr);
  TokenizedDataset data = SyntheticData(32);
  std::vector<std::vector<at::Tensor>> after;
  size_t factors = 0;  // down and up tensors, before the head's
  for (double ratio : {1.0, 4.0}) {
    TrainerOptions options = SmallOptions();
    options.method = TrainMethod::kLora;
    options.up_lr_ratio = ratio;
    auto trainer = Trainer::Create(*encoder, data, options);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ASSERT_TRUE((*trainer)->RunSteps(1).ok());
    after.push_back(Snapshot(**trainer));
    factors = 2 * (*trainer)->adapter().factors().size();
  }
  ASSERT_GT(factors, 0u);
  for (size_t i = 0; i < factors; i += 2) {
    EXPECT_TRUE(at::equal(after[0][i], after[1][i])) << "down factor " << i / 2;
    EXPECT_GT(after[0][i + 1].abs().max().item<double>(), 0)
        << "up factor " << i / 2;
    EXPECT_TRUE(at::allclose(after[1][i + 1], after[0][i + 1] * 4, 1e-5, 1e-9))
        << "up factor " << i / 2;
  }
  TrainerOptions bad = SmallOptions();
  bad.up_lr_ratio = 0;
  EXPECT_FALSE(Trainer::Create(*encoder, data, bad).ok());
}

// --rank-lr-exponent: a DyLoRA step at rank b moves the adapter
// (b / r_max)^exponent as far. Same seed, so both runs sample the same rank
// and see the same first gradients; Adam's first update is proportional to
// the rate, and the head (rate unchanged) moves the same.
TEST(TrainerTest, RankLrExponentScalesTheAdaptersStepByRank) {
  auto encoder = TinyBert();
  ASSERT_NE(encoder, nullptr);
  TokenizedDataset data = SyntheticData(32);
  std::vector<std::vector<at::Tensor>> after;
  size_t factors = 0;
  int64_t rank = 0;
  int64_t r_max = 0;
  for (double exponent : {0.0, 1.0}) {
    TrainerOptions options = SmallOptions();
    options.adapter.update_mode = UpdateMode::kFull;
    options.rank_lr_exponent = exponent;
    auto trainer = Trainer::Create(*encoder, data, options);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ASSERT_TRUE((*trainer)
                    ->RunSteps(1, [&](const StepReport& r) { rank = r.rank; })
                    .ok());
    after.push_back(Snapshot(**trainer));
    factors = 2 * (*trainer)->adapter().factors().size();
    r_max = (*trainer)->adapter().config().r_max;
  }
  ASSERT_GT(factors, 0u);
  ASSERT_LT(rank, r_max) << "pick a seed whose first rank is below r_max";
  // The up factors start at zero, so their first step is Adam's alone
  // (the down factors' is weight decay only: their gradient is zero).
  const double scale = static_cast<double>(rank) / static_cast<double>(r_max);
  for (size_t i = 1; i < factors; i += 2) {
    EXPECT_GT(after[0][i].abs().max().item<double>(), 0) << "factor " << i;
    EXPECT_TRUE(at::allclose(after[1][i], after[0][i] * scale, 1e-5, 1e-9))
        << "up factor " << i / 2 << " at rank " << rank;
  }
  for (size_t i = factors; i < after[0].size(); ++i) {
    EXPECT_TRUE(at::equal(after[0][i], after[1][i])) << "head tensor " << i;
  }
  TrainerOptions bad = SmallOptions();
  bad.rank_lr_exponent = -1;
  EXPECT_FALSE(Trainer::Create(*encoder, data, bad).ok());
}

TEST(TrainerTest, SameSeedSameAdapterBitForBit) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(64);
  auto a = Trainer::Create(*encoder, data, SmallOptions());
  auto b = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->RunSteps(12).ok());
  ASSERT_TRUE((*b)->RunSteps(12).ok());
  ExpectIdentical(Snapshot(**a), Snapshot(**b));
}

TEST(TrainerTest, ResumeEqualsUninterrupted) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(40);  // steps cross an epoch edge
  TrainerOptions options = SmallOptions();
  options.grad_accumulation = 2;
  options.warmup_ratio = 0.2;
  auto whole = Trainer::Create(*encoder, data, options);
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE((*whole)->RunSteps(12).ok());

  testing::ScopedTempDir dir;
  const std::string checkpoint = dir.path() + "/ckpt";
  {
    auto first = Trainer::Create(*encoder, data, options);
    ASSERT_TRUE((*first)->RunSteps(5).ok());
    ASSERT_TRUE((*first)->SaveCheckpoint(checkpoint).ok());
  }
  auto second = Trainer::Create(*encoder, data, options);
  ASSERT_TRUE(second.ok());
  absl::Status loaded = (*second)->LoadCheckpoint(checkpoint);
  ASSERT_TRUE(loaded.ok()) << loaded;
  EXPECT_EQ((*second)->step(), 5);
  ASSERT_TRUE((*second)->RunSteps(100).ok());
  EXPECT_EQ((*second)->step(), 12);
  ExpectIdentical(Snapshot(**whole), Snapshot(**second));
}

TEST(TrainerTest, CheckpointOfAnotherConfigurationIsRefused) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(40);
  testing::ScopedTempDir dir;
  auto first = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE((*first)->RunSteps(2).ok());
  ASSERT_TRUE((*first)->SaveCheckpoint(dir.path() + "/ckpt").ok());
  TrainerOptions other = SmallOptions();
  other.seed = 12;
  auto second = Trainer::Create(*encoder, data, other);
  absl::Status status = (*second)->LoadCheckpoint(dir.path() + "/ckpt");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("seed"));
  EXPECT_EQ((*second)->step(), 0);
}

TEST(TrainerTest, NonFiniteLossStopsBeforeUpdating) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(16, /*regression=*/true);
  for (auto& e : data.examples) e.label = std::nanf("");
  auto trainer = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE(trainer.ok());
  std::vector<at::Tensor> before = Snapshot(**trainer);
  absl::Status status = (*trainer)->RunSteps(1);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("loss is nan"));
  EXPECT_EQ((*trainer)->step(), 0);
  ExpectIdentical(before, Snapshot(**trainer));
}

TEST(TrainerTest, FullFineTuningTrainsACopyAndLeavesTheSharedEncoderAlone) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(32);
  const at::Tensor shared_query =
      (*encoder->LinearWeight({0, LinearKind::kQuery})).clone();
  TrainerOptions options = SmallOptions();
  options.method = TrainMethod::kFull;
  auto trainer = Trainer::Create(*encoder, data, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->trains_backbone());
  ASSERT_TRUE((*trainer)->RunSteps(3).ok());
  EXPECT_TRUE(
      at::equal(*encoder->LinearWeight({0, LinearKind::kQuery}), shared_query));
  EXPECT_FALSE(
      at::equal(*(*trainer)->model().LinearWeight({0, LinearKind::kQuery}),
                shared_query));
  // Resume restores the trained backbone copy too.
  testing::ScopedTempDir dir;
  ASSERT_TRUE((*trainer)->SaveCheckpoint(dir.path() + "/ckpt").ok());
  auto resumed = Trainer::Create(*encoder, data, options);
  ASSERT_TRUE((*resumed)->LoadCheckpoint(dir.path() + "/ckpt").ok());
  EXPECT_TRUE(
      at::equal(*(*resumed)->model().LinearWeight({0, LinearKind::kQuery}),
                *(*trainer)->model().LinearWeight({0, LinearKind::kQuery})));
}

TEST(TrainerTest, DropoutRatesComeFromTheConfigUnlessGiven) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(8);
  TrainerOptions options = SmallOptions();
  options.hidden_dropout.reset();
  options.attention_dropout.reset();
  options.classifier_dropout.reset();
  auto from_config = Trainer::Create(*encoder, data, options);
  ASSERT_TRUE(from_config.ok());
  EXPECT_EQ((*from_config)->dropout().hidden, 0.0);  // tiny-bert's config
  EXPECT_EQ((*from_config)->dropout().attention, 0.0);
  EXPECT_EQ((*from_config)->dropout().classifier, 0.0);
  auto given = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE(given.ok());
  EXPECT_EQ((*given)->dropout().hidden, 0.1);
  EXPECT_EQ((*given)->dropout().attention, 0.1);
  EXPECT_EQ((*given)->dropout().classifier, 0.1);
}

TEST(TrainerTest, DropoutActsInTrainingOnlyAndFollowsTheSeed) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(64);
  TrainerOptions with = SmallOptions();
  TrainerOptions without = SmallOptions();
  without.hidden_dropout = without.attention_dropout =
      without.classifier_dropout = 0.0;
  auto a = Trainer::Create(*encoder, data, with);
  auto b = Trainer::Create(*encoder, data, without);
  ASSERT_TRUE(a.ok() && b.ok());
  ExpectIdentical(Snapshot(**a), Snapshot(**b));  // same init
  ASSERT_TRUE((*a)->RunSteps(1).ok());
  ASSERT_TRUE((*b)->RunSteps(1).ok());
  // The same step with and without dropout masks updates differently.
  const auto sa = Snapshot(**a), sb = Snapshot(**b);
  bool any_differs = false;
  for (size_t i = 0; i < sa.size(); ++i)
    any_differs |= !at::equal(sa[i], sb[i]);
  EXPECT_TRUE(any_differs);

  // Evaluation draws no masks: two evaluations agree exactly.
  TokenizedDataset dev = SyntheticData(24);
  auto p1 = PredictAtRank(*encoder, (*a)->adapter(), (*a)->head(), dev, 3, 8);
  auto p2 = PredictAtRank(*encoder, (*a)->adapter(), (*a)->head(), dev, 3, 8);
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(*p1, *p2);
}

TEST(TrainerTest, CheckpointWithoutDropoutStateIsRefused) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(40);
  testing::ScopedTempDir dir;
  const std::string checkpoint = dir.path() + "/ckpt";
  auto first = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->RunSteps(2).ok());
  ASSERT_TRUE((*first)->SaveCheckpoint(checkpoint).ok());
  ASSERT_TRUE(std::filesystem::remove(checkpoint + "/rng.safetensors"));
  auto second = Trainer::Create(*encoder, data, SmallOptions());
  ASSERT_TRUE(second.ok());
  absl::Status status = (*second)->LoadCheckpoint(checkpoint);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("rng.safetensors"));
  EXPECT_EQ((*second)->step(), 0);
}

TEST(TrainerTest, BadOptionsAreRejected) {
  auto encoder = TinyBert();
  TokenizedDataset data = SyntheticData(8);
  TrainerOptions options = SmallOptions();
  options.batch_size = 0;
  EXPECT_FALSE(Trainer::Create(*encoder, data, options).ok());
  options = SmallOptions();
  options.hidden_dropout = 1.0;
  EXPECT_FALSE(Trainer::Create(*encoder, data, options).ok());
  options = SmallOptions();
  options.classifier_dropout = -0.5;
  EXPECT_FALSE(Trainer::Create(*encoder, data, options).ok());
  options = SmallOptions();
  options.adapter.r_min = 9;
  EXPECT_FALSE(Trainer::Create(*encoder, data, options).ok());
}

}  // namespace
}  // namespace dylora
