#include "core/adapter/adapter.h"

#include <ATen/ATen.h>

#include <thread>

#include "core/adapter/adapter_hooks.h"
#include "core/model/packed_linears.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/adapter/adapter_test_util.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;
using testing::LoadGoldenLogits;
using testing::LoadTinyBert;
using testing::MaxAbsDiff;
using testing::RandomAdapter;

at::Tensor Hidden(const Encoder& encoder, const EncoderInputs& inputs,
                  const LinearHook* hook) {
  auto out = encoder.Forward(inputs, hook);
  EXPECT_TRUE(out.ok()) << out.status();
  return out->last_hidden_state;
}

TEST(DyLoraAdapterTest, FreshAdapterHasEncoderShapesAndZeroUp) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto head = ClassificationHead::Create(HeadKind::kBertPooled, 32, 3, 1);
  ASSERT_TRUE(head.ok());
  auto adapter =
      DyLoraAdapter::CreateFresh(*encoder, {}, head->named_tensors(), 7);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  const DyLoraAdapter& a = **adapter;
  ASSERT_EQ(a.factors().size(), 4u);  // 2 layers x {query, value}
  for (const auto& [id, f] : a.factors()) {
    EXPECT_TRUE(id.kind == LinearKind::kQuery || id.kind == LinearKind::kValue);
    EXPECT_EQ(f.down.sizes(), (std::vector<int64_t>{8, 32}));
    EXPECT_EQ(f.up.sizes(), (std::vector<int64_t>{32, 8}));
    EXPECT_EQ(f.up.abs().max().item<float>(), 0.0f);
    EXPECT_GT(f.down.abs().max().item<float>(), 0.0f);
    EXPECT_TRUE(f.down.requires_grad());
  }
  EXPECT_EQ(a.config().base_model_fingerprint, encoder->fingerprint());
  EXPECT_FALSE(encoder->fingerprint().empty());
  EXPECT_EQ(a.Find(LinearId{0, LinearKind::kKey}), nullptr);
  EXPECT_NE(a.Find(LinearId{1, LinearKind::kValue}), nullptr);
  EXPECT_EQ(a.TrainableParameters().size(), 4u * 2 + 2);
  // The adapter shares the head's tensors (a trainer keeps training `head`).
  EXPECT_EQ(a.head()[0].second.data_ptr(),
            head->named_tensors()[0].second.data_ptr());
  EXPECT_TRUE(head->named_tensors()[0].second.requires_grad());
  // Zero up: the adapted model equals the backbone at every rank.
  auto golden = LoadGoldenLogits();
  at::Tensor base = Hidden(*encoder, golden.inputs, nullptr);
  auto hook = AdapterHook::Create(a, RankSpec::Single(3));
  ASSERT_TRUE(hook.ok());
  EXPECT_EQ(MaxAbsDiff(Hidden(*encoder, golden.inputs, hook->get()), base), 0);
  // Same seed, same adapter.
  auto again =
      DyLoraAdapter::CreateFresh(*encoder, {}, head->named_tensors(), 7);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(at::equal((*again)->factors()[0].second.down,
                        a.factors()[0].second.down));
}

TEST(DyLoraAdapterTest, AllTargetKindsGetFactors) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  AdapterConfig config;
  config.target_kinds = {LinearKind::kKey, LinearKind::kAttentionOutput,
                         LinearKind::kIntermediate, LinearKind::kOutput};
  auto a = RandomAdapter(*encoder, config);
  ASSERT_NE(a, nullptr);
  const LoraFactors* inter = a->Find(LinearId{1, LinearKind::kIntermediate});
  ASSERT_NE(inter, nullptr);
  EXPECT_EQ(inter->down.sizes(), (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(inter->up.sizes(), (std::vector<int64_t>{64, 8}));
  const LoraFactors* out = a->Find(LinearId{0, LinearKind::kOutput});
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->down.sizes(), (std::vector<int64_t>{8, 64}));
}

TEST(AdapterHookTest, PerRowRanksEqualSeparateSingleRankForwards) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto adapter = RandomAdapter(*encoder);
  auto golden = LoadGoldenLogits();
  at::Tensor ranks = at::tensor({2, 8, 5}, at::kLong);
  auto mixed_hook = AdapterHook::Create(*adapter, RankSpec::PerRow(ranks));
  ASSERT_TRUE(mixed_hook.ok()) << mixed_hook.status();
  at::Tensor mixed = Hidden(*encoder, golden.inputs, mixed_hook->get());
  for (int64_t i = 0; i < 3; ++i) {
    auto single = AdapterHook::Create(
        *adapter, RankSpec::Single(ranks[i].item<int64_t>()));
    ASSERT_TRUE(single.ok());
    at::Tensor h = Hidden(*encoder, golden.inputs, single->get());
    EXPECT_LE(MaxAbsDiff(mixed[i], h[i]), 1e-5) << "row " << i;
  }
}

// The serving path: a packed batch of mixed lengths and mixed ranks (one
// rank per token, repeated from its row) equals the padded forward with one
// rank per row, within 1e-5 on every real token.
TEST(AdapterHookTest, PackedMixedRanksEqualPaddedPerRowRanks) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  AdapterConfig config;
  config.target_kinds = {
      LinearKind::kQuery,        LinearKind::kKey,
      LinearKind::kValue,        LinearKind::kAttentionOutput,
      LinearKind::kIntermediate, LinearKind::kOutput};
  auto adapter = RandomAdapter(*encoder, config);
  ASSERT_NE(adapter, nullptr);
  const std::vector<std::vector<int32_t>> ids = {
      {5, 6, 7, 8, 9, 10, 11}, {12, 13}, {14, 15, 16, 17}, {18}};
  const std::vector<int64_t> row_ranks = {1, 8, 3, 8};
  std::vector<std::vector<int32_t>> types;
  std::vector<PackedRow> rows;
  std::vector<int64_t> token_ranks;
  for (size_t r = 0; r < ids.size(); ++r) types.emplace_back(ids[r].size(), 0);
  for (size_t r = 0; r < ids.size(); ++r) {
    rows.push_back({ids[r], types[r]});
    token_ranks.insert(token_ranks.end(), ids[r].size(), row_ranks[r]);
  }
  const int64_t longest = 7;
  at::Tensor padded_ids = at::zeros({4, longest}, at::kLong);
  at::Tensor mask = at::zeros({4, longest}, at::kLong);
  for (int64_t r = 0; r < 4; ++r) {
    for (size_t t = 0; t < ids[r].size(); ++t) {
      padded_ids[r][static_cast<int64_t>(t)] = ids[r][t];
      mask[r][static_cast<int64_t>(t)] = 1;
    }
  }
  auto padded_hook = AdapterHook::Create(
      *adapter, RankSpec::PerRow(at::tensor(row_ranks, at::kLong)));
  auto packed_hook = AdapterHook::Create(
      *adapter, RankSpec::PerRow(at::tensor(token_ranks, at::kLong)));
  ASSERT_TRUE(padded_hook.ok() && packed_hook.ok());
  at::Tensor padded =
      Hidden(*encoder, {padded_ids, at::zeros_like(padded_ids), mask},
             padded_hook->get());
  auto packed = encoder->ForwardPacked(
      PackRows(rows, encoder->config(), encoder->device()), packed_hook->get());
  ASSERT_TRUE(packed.ok()) << packed.status();
  for (int64_t r = 0; r < 4; ++r) {
    const auto length = static_cast<int64_t>(ids[r].size());
    EXPECT_LE(MaxAbsDiff(packed->last_hidden_state[r].narrow(0, 0, length),
                         padded[r].narrow(0, 0, length)),
              1e-5)
        << "row " << r << " at rank " << row_ranks[r];
  }
}

// Over a packed backbone (dylora-serve's base) the truncated hook takes the
// base's fused query/key/value and adds each low-rank term in place: the
// same hidden states as the per-kind path over plain linears.
TEST(AdapterHookTest, FusedQueryKeyValueOverAPackedBaseEqualsPerKind) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  if (!CheckPackedLinearsSupported(Precision::kFp32, encoder->device(),
                                   encoder->dtype())
           .ok()) {
    GTEST_SKIP() << "LibTorch has no oneDNN kernels here";
  }
  AdapterConfig config;
  config.target_kinds = {LinearKind::kQuery, LinearKind::kKey,
                         LinearKind::kValue, LinearKind::kOutput};
  auto adapter = RandomAdapter(*encoder, config);
  ASSERT_NE(adapter, nullptr);
  auto base = PackEncoderLinears(*encoder, Precision::kFp32);
  ASSERT_TRUE(base.ok()) << base.status();
  const std::vector<std::vector<int32_t>> ids = {{5, 6, 7, 8}, {9, 10}};
  const std::vector<std::vector<int32_t>> types = {{0, 0, 0, 0}, {0, 0}};
  const std::vector<PackedRow> rows = {{ids[0], types[0]}, {ids[1], types[1]}};
  const at::Tensor token_ranks = at::tensor({2, 2, 2, 2, 7, 7}, at::kLong);
  auto plain = AdapterHook::Create(*adapter, RankSpec::PerRow(token_ranks));
  auto fused =
      AdapterHook::Create(*adapter, RankSpec::PerRow(token_ranks), *base);
  ASSERT_TRUE(plain.ok() && fused.ok());
  const at::Tensor x = at::randn({6, encoder->config().hidden_size});
  EXPECT_TRUE((*fused)->ApplyQueryKeyValue(0, x).has_value());
  EXPECT_FALSE((*plain)->ApplyQueryKeyValue(0, x).has_value());
  const PackedInputs inputs =
      PackRows(rows, encoder->config(), encoder->device());
  auto want = encoder->ForwardPacked(inputs, plain->get());
  auto got = encoder->ForwardPacked(inputs, fused->get());
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_LE(MaxAbsDiff(got->last_hidden_state, want->last_hidden_state), 1e-4);
}

TEST(AdapterHookTest, RanksAreValidated) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto adapter = RandomAdapter(*encoder);
  for (int64_t bad : {0, 9}) {
    auto hook = AdapterHook::Create(*adapter, RankSpec::Single(bad));
    ASSERT_FALSE(hook.ok());
    EXPECT_EQ(hook.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(
      AdapterHook::Create(*adapter, RankSpec::Single(9)).status().message(),
      "rank 9 is outside this adapter's range [1, 8]");
  EXPECT_FALSE(AdapterHook::Create(
                   *adapter, RankSpec::PerRow(at::tensor({1, 9}, at::kLong)))
                   .ok());
  EXPECT_FALSE(TrainingHook::Create(*adapter, 0).ok());
  EXPECT_FALSE(MergedWeights(*adapter, *encoder, 9).ok());
  AdapterConfig narrow;
  narrow.r_min = 3;
  auto b = RandomAdapter(*encoder, narrow);
  EXPECT_FALSE(AdapterHook::Create(*b, RankSpec::Single(2)).ok());
  EXPECT_TRUE(AdapterHook::Create(*b, RankSpec::Single(3)).ok());
}

TEST(AdapterHookTest, MergedWeightsEqualTruncatedPath) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto adapter = RandomAdapter(*encoder);
  auto golden = LoadGoldenLogits();
  c10::InferenceMode inference;
  for (int64_t b = 1; b <= 8; ++b) {
    auto merged = MergedWeights(*adapter, *encoder, b);
    ASSERT_TRUE(merged.ok()) << merged.status();
    ASSERT_EQ(merged->size(), 4u);
    MergedWeightsHook merged_hook(*merged);
    auto truncated = AdapterHook::Create(*adapter, RankSpec::Single(b));
    ASSERT_TRUE(truncated.ok());
    EXPECT_LE(MaxAbsDiff(Hidden(*encoder, golden.inputs, &merged_hook),
                         Hidden(*encoder, golden.inputs, truncated->get())),
              1e-5)
        << "rank " << b;
  }
}

TEST(TrainingHookTest, FrozenModeGradientsOnlyAtRowB) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto adapter = RandomAdapter(*encoder);
  adapter->SetRequiresGrad(true);
  auto golden = LoadGoldenLogits();
  const int64_t b = 4;
  for (UpdateMode mode : {UpdateMode::kFrozen, UpdateMode::kFull}) {
    for (at::Tensor& p : adapter->TrainableParameters()) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    auto hook = TrainingHook::Create(*adapter, b, mode);
    ASSERT_TRUE(hook.ok());
    auto head = adapter->BuildHead(*encoder);
    ASSERT_TRUE(head.ok()) << head.status();
    auto out = encoder->Forward(golden.inputs, hook->get());
    ASSERT_TRUE(out.ok());
    auto logits = head->Forward(*out);
    ASSERT_TRUE(logits.ok());
    logits->pow(2).sum().backward();
    for (const auto& [id, f] : adapter->factors()) {
      ASSERT_TRUE(f.down.grad().defined());
      for (int64_t k = 0; k < 8; ++k) {
        const double row = f.down.grad()[k].abs().max().item<double>();
        const double col = f.up.grad().select(1, k).abs().max().item<double>();
        const bool live = mode == UpdateMode::kFrozen ? k == b - 1 : k < b;
        if (live) {
          EXPECT_GT(row, 0) << id.ModulePath() << " row " << k;
          EXPECT_GT(col, 0) << id.ModulePath() << " col " << k;
        } else {
          EXPECT_EQ(row, 0) << id.ModulePath() << " row " << k;
          EXPECT_EQ(col, 0) << id.ModulePath() << " col " << k;
        }
      }
    }
  }
}

TEST(DyLoraAdapterTest, RefusesWrongBackbone) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto adapter = RandomAdapter(*encoder);
  // Same shapes, different fingerprint.
  AdapterConfig config = adapter->config();
  config.base_model_fingerprint = "0123456789abcdef";
  std::vector<std::pair<LinearId, LoraFactors>> factors = adapter->factors();
  auto other = DyLoraAdapter::FromParts(config, factors, adapter->head());
  ASSERT_TRUE(other.ok());
  absl::Status s = (*other)->ValidateAgainst(*encoder);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("0123456789abcdef"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(encoder->fingerprint()));
  // A layer the backbone does not have.
  config.base_model_fingerprint = "";
  factors.push_back({LinearId{5, LinearKind::kQuery}, factors[0].second});
  auto deep = DyLoraAdapter::FromParts(config, factors, adapter->head());
  ASSERT_TRUE(deep.ok());
  EXPECT_THAT(std::string((*deep)->ValidateAgainst(*encoder).message()),
              HasSubstr("encoder.layer.5.attention.self.query"));
  // Wrong head width.
  DyLoraAdapter::NamedTensors head = {{"classifier.weight", at::zeros({3, 16})},
                                      {"classifier.bias", at::zeros({3})}};
  auto bad_head = DyLoraAdapter::FromParts(config, adapter->factors(), head);
  ASSERT_TRUE(bad_head.ok());
  EXPECT_FALSE((*bad_head)->ValidateAgainst(*encoder).ok());
}

TEST(DyLoraAdapterTest, FromPartsRejectsInconsistentParts) {
  AdapterConfig config;
  LoraFactors f{at::zeros({8, 32}), at::zeros({32, 8})};
  EXPECT_TRUE(DyLoraAdapter::FromParts(config, {{LinearId{0}, f}}, {}).ok());
  EXPECT_FALSE(DyLoraAdapter::FromParts(config, {}, {}).ok());
  EXPECT_FALSE(
      DyLoraAdapter::FromParts(config, {{LinearId{0}, f}, {LinearId{0}, f}}, {})
          .ok());
  LoraFactors wrong_r{at::zeros({4, 32}), at::zeros({32, 4})};
  EXPECT_FALSE(
      DyLoraAdapter::FromParts(config, {{LinearId{0}, wrong_r}}, {}).ok());
  LoraFactors mismatched{at::zeros({8, 32}), at::zeros({32, 7})};
  EXPECT_FALSE(
      DyLoraAdapter::FromParts(config, {{LinearId{0}, mismatched}}, {}).ok());
  AdapterConfig bad_alpha;
  bad_alpha.alpha = 0;
  EXPECT_FALSE(
      DyLoraAdapter::FromParts(bad_alpha, {{LinearId{0}, f}}, {}).ok());
  AdapterConfig bad_range;
  bad_range.r_min = 9;
  EXPECT_FALSE(
      DyLoraAdapter::FromParts(bad_range, {{LinearId{0}, f}}, {}).ok());
}

TEST(AdapterHookTest, ConcurrentConstUseGivesIdenticalResults) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  auto adapter = RandomAdapter(*encoder);
  auto golden = LoadGoldenLogits();
  std::vector<at::Tensor> expected;
  for (int64_t b = 1; b <= 8; ++b) {
    auto hook = AdapterHook::Create(*adapter, RankSpec::Single(b));
    expected.push_back(Hidden(*encoder, golden.inputs, hook->get()));
  }
  std::vector<double> worst(4, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      c10::InferenceMode inference;
      double w = 0;
      for (int iter = 0; iter < 5; ++iter) {
        const int64_t b = 1 + (t * 5 + iter) % 8;
        auto hook = AdapterHook::Create(*adapter, RankSpec::Single(b));
        if (!hook.ok()) return;
        auto out = encoder->Forward(golden.inputs, hook->get());
        if (!out.ok()) return;
        w = std::max(w, MaxAbsDiff(out->last_hidden_state, expected[b - 1]));
      }
      worst[t] = w;
    });
  }
  for (auto& th : threads) th.join();
  for (double w : worst) EXPECT_EQ(w, 0.0);
}

TEST(AdapterHookTest, AdapterFollowsTheBackbonesDtype) {
  auto encoder = LoadTinyBert();
  ASSERT_NE(encoder, nullptr);
  EncoderLoadOptions options;
  options.dtype = at::kDouble;
  auto encoder64 =
      Encoder::Load(testing::AdapterFixtures() + "/tiny-bert", options);
  ASSERT_TRUE(encoder64.ok()) << encoder64.status();
  auto adapter = RandomAdapter(*encoder);
  auto golden = LoadGoldenLogits();
  auto hook = AdapterHook::Create(*adapter, RankSpec::Single(5));
  ASSERT_TRUE(hook.ok());
  at::Tensor h32 = Hidden(*encoder, golden.inputs, hook->get());
  // A float32 adapter on a float64 backbone (converted per call) ...
  at::Tensor h64 = Hidden(**encoder64, golden.inputs, hook->get());
  EXPECT_EQ(h64.scalar_type(), at::kDouble);
  EXPECT_LE(MaxAbsDiff(h32, h64), 1e-4);
  // ... and one copied to float64 once.
  auto adapter64 = adapter->To(c10::Device(c10::kCPU), at::kDouble);
  ASSERT_TRUE(adapter64.ok()) << adapter64.status();
  EXPECT_EQ((*adapter64)->factors()[0].second.down.scalar_type(), at::kDouble);
  auto hook64 = AdapterHook::Create(**adapter64, RankSpec::Single(5));
  ASSERT_TRUE(hook64.ok());
  EXPECT_LE(MaxAbsDiff(Hidden(**encoder64, golden.inputs, hook64->get()), h64),
            1e-6);
  auto merged = MergedWeights(*adapter, **encoder64, 5);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->front().second.scalar_type(), at::kDouble);
}

TEST(RankMetricsTest, RecommendsBestAndSmallestWithinTolerance) {
  RankMetrics m;
  m.values = {{1, 0.80}, {2, 0.86}, {3, 0.87}, {4, 0.88}, {8, 0.88}};
  m.Recommend(0.015);
  EXPECT_EQ(m.best_rank, 4);  // ties go to the lower rank
  EXPECT_EQ(m.smallest_rank_within_tolerance, 3);
  m.higher_is_better = false;  // e.g. a loss
  m.Recommend(0.0);
  EXPECT_EQ(m.best_rank, 1);
  EXPECT_EQ(m.smallest_rank_within_tolerance, 1);
  RankMetrics empty;
  empty.Recommend(0.1);
  EXPECT_FALSE(empty.best_rank.has_value());
}

TEST(ParseLinearKindTest, RoundTrip) {
  for (LinearKind k : {LinearKind::kQuery, LinearKind::kKey, LinearKind::kValue,
                       LinearKind::kAttentionOutput, LinearKind::kIntermediate,
                       LinearKind::kOutput}) {
    EXPECT_EQ(*ParseLinearKind(LinearKindName(k)), k);
  }
  EXPECT_FALSE(ParseLinearKind("dense").ok());
}

}  // namespace
}  // namespace dylora
