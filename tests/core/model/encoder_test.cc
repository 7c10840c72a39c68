// Encoder behaviour beyond numerics: bad checkpoints, bad inputs, the
// LinearHook seam, autograd, InferenceMode and concurrent use.
#include "core/model/encoder.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <array>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "core/io/torch_tensors.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/model/model_test_util.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::dylora::testing::LoadFixtureTensors;
using ::dylora::testing::MaxAbsDiff;
using ::dylora::testing::ModelFixture;
using ::dylora::testing::ScopedTempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TinyBert() { return ModelFixture("tiny-bert"); }

std::unique_ptr<Encoder> LoadTiny(const std::string& dir = TinyBert()) {
  auto encoder = Encoder::Load(dir);
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return encoder.ok() ? *std::move(encoder) : nullptr;
}

// A model directory in `dir`: tiny-bert's config.json with `tensors` as its
// model.safetensors.
void WriteTinyBertDir(const std::map<std::string, at::Tensor>& tensors,
                      const std::string& dir) {
  std::vector<std::pair<std::string, at::Tensor>> list(tensors.begin(),
                                                       tensors.end());
  ASSERT_TRUE(SaveTensors(dir + "/model.safetensors", list).ok());
  std::filesystem::copy_file(TinyBert() + "/config.json", dir + "/config.json");
}

EncoderInputs SomeInputs() {
  at::Tensor ids =
      at::tensor({5, 17, 42, 99, 3, 8, 12, 0}, at::kLong).view({2, 4});
  at::Tensor mask =
      at::tensor({1, 1, 1, 1, 1, 1, 1, 0}, at::kLong).view({2, 4});
  at::Tensor types =
      at::tensor({0, 0, 1, 1, 0, 1, 1, 0}, at::kLong).view({2, 4});
  return {ids, types, mask};
}

// ---- checkpoints ----

TEST(EncoderLoadTest, ReportsAllCheckpointProblemsInOneError) {
  auto config = LoadEncoderConfig(TinyBert());
  ASSERT_TRUE(config.ok()) << config.status();
  auto tensors = LoadFixtureTensors(TinyBert() + "/model.safetensors");
  tensors.erase("encoder.layer.1.attention.self.key.bias");
  tensors["encoder.layer.0.attention.self.extra.weight"] = at::zeros({2, 2});
  tensors["encoder.layer.0.intermediate.dense.weight"] = at::zeros({36, 32});

  // Through a real model directory, as a user would hit it.
  ScopedTempDir dir;
  WriteTinyBertDir(tensors, dir.path());
  auto encoder = Encoder::Load(dir.path());
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(encoder.status().message()),
      AllOf(
          HasSubstr("model.safetensors"),
          HasSubstr("encoder.layer.1.attention.self.key.bias (expected [32])"),
          HasSubstr("encoder.layer.0.attention.self.extra.weight [2, 2]"),
          HasSubstr(
              "encoder.layer.0.intermediate.dense.weight: expected [37, 32], "
              "found [36, 32]")));
}

TEST(EncoderLoadTest, HalfAPoolerIsMissingNotIgnored) {
  auto config = LoadEncoderConfig(TinyBert());
  ASSERT_TRUE(config.ok());
  auto tensors = LoadFixtureTensors(TinyBert() + "/model.safetensors");
  tensors.erase("pooler.dense.bias");
  auto encoder = Encoder::FromTensors(*config, tensors);
  ASSERT_FALSE(encoder.ok());
  EXPECT_THAT(std::string(encoder.status().message()),
              HasSubstr("pooler.dense.bias"));

  tensors.erase("pooler.dense.weight");
  encoder = Encoder::FromTensors(*config, tensors);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_FALSE((*encoder)->has_pooler());
  auto out = (*encoder)->Forward(SomeInputs());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->pooler_output.defined());
}

TEST(EncoderLoadTest, NonFloatingWeightIsRejected) {
  auto config = LoadEncoderConfig(TinyBert());
  ASSERT_TRUE(config.ok());
  auto tensors = LoadFixtureTensors(TinyBert() + "/model.safetensors");
  tensors["embeddings.LayerNorm.bias"] = at::zeros({32}, at::kInt);
  auto encoder = Encoder::FromTensors(*config, tensors);
  ASSERT_FALSE(encoder.ok());
  EXPECT_THAT(
      std::string(encoder.status().message()),
      HasSubstr("embeddings.LayerNorm.bias: expected a floating dtype"));
}

// The server refuses to start on such a backbone: one NaN weight would
// reach only the rows and batches that touch it.
TEST(EncoderLoadTest, NonFiniteWeightIsRefusedByName) {
  auto tensors = LoadFixtureTensors(TinyBert() + "/model.safetensors");
  tensors["encoder.layer.1.intermediate.dense.weight"].view(-1)[7] =
      std::numeric_limits<float>::quiet_NaN();
  ScopedTempDir dir;
  WriteTinyBertDir(tensors, dir.path());
  auto encoder = Encoder::Load(dir.path());
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(encoder.status().message()),
              AllOf(HasSubstr("model.safetensors"),
                    HasSubstr("encoder.layer.1.intermediate.dense.weight"),
                    HasSubstr("1 NaN or Inf value")));
}

TEST(EncoderLoadTest, HandBuiltConfigIsValidated) {
  auto config = LoadEncoderConfig(TinyBert());
  ASSERT_TRUE(config.ok());
  auto tensors = LoadFixtureTensors(TinyBert() + "/model.safetensors");
  EncoderConfig bad = *config;
  bad.num_attention_heads = 0;
  auto encoder = Encoder::FromTensors(bad, tensors);
  ASSERT_FALSE(encoder.ok());
  EXPECT_THAT(std::string(encoder.status().message()),
              HasSubstr("num_attention_heads = 0"));
  bad = *config;
  bad.num_attention_heads = 5;
  encoder = Encoder::FromTensors(bad, tensors);
  ASSERT_FALSE(encoder.ok());
  EXPECT_THAT(std::string(encoder.status().message()),
              HasSubstr("not divisible"));
}

TEST(EncoderLoadTest, DirectoryWithoutConfigFails) {
  ScopedTempDir dir;
  std::filesystem::copy_file(TinyBert() + "/model.safetensors",
                             dir.path() + "/model.safetensors");
  auto encoder = Encoder::Load(dir.path());
  ASSERT_FALSE(encoder.ok());
  EXPECT_THAT(std::string(encoder.status().message()),
              HasSubstr("config.json"));
}

TEST(EncoderLoadTest, DirectoryWithoutWeightsFails) {
  ScopedTempDir dir;
  std::filesystem::copy_file(TinyBert() + "/config.json",
                             dir.path() + "/config.json");
  auto encoder = Encoder::Load(dir.path());
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(encoder.status().message()),
              HasSubstr("model.safetensors"));
}

TEST(EncoderLoadTest, MissingDirectoryFails) {
  auto encoder = Encoder::Load("/nonexistent/dylora/model");
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.status().code(), absl::StatusCode::kNotFound);
}

TEST(EncoderLoadTest, TruncatedWeightsFileFails) {
  ScopedTempDir dir;
  std::filesystem::copy_file(TinyBert() + "/config.json",
                             dir.path() + "/config.json");
  auto bytes = ReadFileToString(TinyBert() + "/model.safetensors");
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/model.safetensors",
                                  bytes->substr(0, bytes->size() / 2))
                  .ok());
  EXPECT_FALSE(Encoder::Load(dir.path()).ok());
}

// ---- inputs ----

TEST(EncoderForwardTest, IdsOutOfVocabAreInvalidArgument) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  EncoderInputs in = SomeInputs();
  in.input_ids[0][1] = 100;  // vocab_size is 100
  auto out = encoder->Forward(in);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()),
              AllOf(HasSubstr("input_ids"), HasSubstr("vocab_size")));
  in.input_ids[0][1] = -1;
  EXPECT_EQ(encoder->Forward(in).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EncoderForwardTest, TokenTypesOutOfRangeAreInvalidArgument) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  EncoderInputs in = SomeInputs();
  in.token_type_ids[1][0] = 2;  // type_vocab_size is 2
  auto out = encoder->Forward(in);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("token_type_ids"));
}

TEST(EncoderForwardTest, MismatchedShapesAreInvalidArgument) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  EncoderInputs in = SomeInputs();
  in.attention_mask = at::ones({2, 5}, at::kLong);
  auto out = encoder->Forward(in);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()),
              AllOf(HasSubstr("attention_mask"), HasSubstr("[2, 5]")));

  in = SomeInputs();
  in.token_type_ids = at::zeros({4, 2}, at::kLong);
  EXPECT_EQ(encoder->Forward(in).status().code(),
            absl::StatusCode::kInvalidArgument);

  in = SomeInputs();
  in.input_ids = in.input_ids.flatten();
  in.token_type_ids = at::Tensor();
  in.attention_mask = at::Tensor();
  EXPECT_EQ(encoder->Forward(in).status().code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(encoder->Forward(EncoderInputs{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  in = SomeInputs();
  in.input_ids = in.input_ids.to(at::kFloat);
  EXPECT_EQ(encoder->Forward(in).status().code(),
            absl::StatusCode::kInvalidArgument);
  in = SomeInputs();
  in.attention_mask = in.attention_mask * 2;
  EXPECT_EQ(encoder->Forward(in).status().code(),
            absl::StatusCode::kInvalidArgument);
  in.input_ids = at::zeros({0, 4}, at::kLong);
  in.token_type_ids = in.attention_mask = at::Tensor();
  EXPECT_EQ(encoder->Forward(in).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EncoderForwardTest, SequenceLongerThanPositionsIsInvalidArgument) {
  for (const std::string name : {"tiny-bert", "tiny-roberta"}) {
    SCOPED_TRACE(name);
    auto encoder = LoadTiny(ModelFixture(name));
    ASSERT_NE(encoder, nullptr);
    const int64_t max_len = encoder->max_sequence_length();
    EXPECT_EQ(max_len, name == "tiny-bert" ? 64 : 62);
    EncoderInputs in{at::full({1, max_len}, 5, at::kLong), {}, {}};
    EXPECT_TRUE(encoder->Forward(in).ok());
    in.input_ids = at::full({1, max_len + 1}, 5, at::kLong);
    auto out = encoder->Forward(in);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(out.status().message()),
                HasSubstr("sequence length"));
  }
}

TEST(EncoderForwardTest, DefaultsEqualExplicitZeroTypesAndFullMask) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  at::Tensor ids = SomeInputs().input_ids;
  auto implicit = encoder->Forward({ids, {}, {}});
  auto explicit_ = encoder->Forward(
      {ids, at::zeros_like(ids), at::ones_like(ids, at::kBool)});
  ASSERT_TRUE(implicit.ok() && explicit_.ok());
  EXPECT_TRUE(
      at::allclose(implicit->last_hidden_state, explicit_->last_hidden_state));
  // int32 ids are accepted as well.
  auto narrow = encoder->Forward({ids.to(at::kInt), {}, {}});
  ASSERT_TRUE(narrow.ok()) << narrow.status();
  EXPECT_TRUE(
      at::equal(implicit->last_hidden_state, narrow->last_hidden_state));
}

TEST(EncoderForwardTest, PaddingDoesNotChangeRealTokens) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  at::Tensor ids = at::tensor({7, 8, 9}, at::kLong).view({1, 3});
  auto alone = encoder->Forward({ids, {}, {}});
  at::Tensor padded = at::tensor({7, 8, 9, 0, 0}, at::kLong).view({1, 5});
  at::Tensor mask = at::tensor({1, 1, 1, 0, 0}, at::kLong).view({1, 5});
  auto with_pad = encoder->Forward({padded, {}, mask});
  ASSERT_TRUE(alone.ok() && with_pad.ok());
  EXPECT_TRUE(at::allclose(alone->last_hidden_state,
                           with_pad->last_hidden_state.slice(1, 0, 3), 1e-5,
                           1e-5));
}

// ---- padding-free (packed) batches ----

// The rows as PackRows wants them (ids and zero types).
struct HostRows {
  std::vector<std::vector<int32_t>> ids, types;
  std::vector<PackedRow> Views() const {
    std::vector<PackedRow> views;
    for (size_t r = 0; r < ids.size(); ++r) views.push_back({ids[r], types[r]});
    return views;
  }
};

HostRows MakeRows(const std::vector<std::vector<int32_t>>& ids) {
  HostRows rows{ids, {}};
  for (const auto& row : ids) rows.types.emplace_back(row.size(), 0);
  return rows;
}

// The same rows right-padded with `pad` and their mask, for Forward.
EncoderInputs PaddedInputs(const HostRows& rows, int64_t pad) {
  size_t longest = 0;
  for (const auto& row : rows.ids) longest = std::max(longest, row.size());
  const auto batch = static_cast<int64_t>(rows.ids.size());
  at::Tensor ids =
      at::full({batch, static_cast<int64_t>(longest)}, pad, at::kLong);
  at::Tensor mask = at::zeros_like(ids);
  for (int64_t r = 0; r < batch; ++r) {
    for (size_t t = 0; t < rows.ids[r].size(); ++t) {
      ids[r][static_cast<int64_t>(t)] = rows.ids[r][t];
      mask[r][static_cast<int64_t>(t)] = 1;
    }
  }
  return {ids, at::zeros_like(ids), mask};
}

// Packed and padded runs agree on every real token and on the pooler, for
// BERT (positions from 0) and RoBERTa (positions after padding_idx; a pad id
// inside a row keeps padding_idx), with mixed lengths and equal ones.
TEST(EncoderPackedTest, PackedForwardEqualsPaddedForward) {
  for (const std::string& dir : {TinyBert(), ModelFixture("tiny-roberta")}) {
    SCOPED_TRACE(dir);
    auto encoder = LoadTiny(dir);
    ASSERT_NE(encoder, nullptr);
    const int64_t pad = encoder->config().pad_token_id;
    for (const auto& ids : std::vector<std::vector<std::vector<int32_t>>>{
             {{7, 8, 9},
              {4, 5, 6, 7, 8},
              {11},
              {3, static_cast<int32_t>(pad), 5, 6}},
             {{7, 8, 9}, {4, 5, 6}}}) {
      HostRows rows = MakeRows(ids);
      auto padded = encoder->Forward(PaddedInputs(rows, pad));
      ASSERT_TRUE(padded.ok()) << padded.status();
      auto packed = encoder->ForwardPacked(
          PackRows(rows.Views(), encoder->config(), encoder->device()));
      ASSERT_TRUE(packed.ok()) << packed.status();
      ASSERT_EQ(packed->last_hidden_state.sizes(),
                padded->last_hidden_state.sizes());
      for (size_t r = 0; r < ids.size(); ++r) {
        const auto length = static_cast<int64_t>(ids[r].size());
        EXPECT_LT(MaxAbsDiff(packed->last_hidden_state[r].narrow(0, 0, length),
                             padded->last_hidden_state[r].narrow(0, 0, length)),
                  1e-5)
            << "row " << r;
      }
      if (padded->pooler_output.defined()) {
        EXPECT_LT(MaxAbsDiff(packed->pooler_output, padded->pooler_output),
                  1e-5);
      }
      // The mask comes back for pooling when (and only when) rows differ.
      const bool mixed = ids.front().size() != ids.back().size();
      EXPECT_EQ(packed->attention_mask.defined(), mixed);
    }
  }
}

// A row's packed output does not depend on the other rows of its batch.
TEST(EncoderPackedTest, ARowsOutputDoesNotDependOnItsBatch) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  HostRows alone = MakeRows({{4, 5, 6, 7}});
  HostRows batch = MakeRows({{9, 9, 9, 9, 9, 9, 9, 9}, {4, 5, 6, 7}, {3}});
  auto a = encoder->ForwardPacked(
      PackRows(alone.Views(), encoder->config(), encoder->device()));
  auto b = encoder->ForwardPacked(
      PackRows(batch.Views(), encoder->config(), encoder->device()));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(MaxAbsDiff(a->last_hidden_state[0],
                       b->last_hidden_state[1].narrow(0, 0, 4)),
            1e-5);
  // Padded positions hold zeros, never another row's values.
  EXPECT_EQ(b->last_hidden_state[2].narrow(0, 1, 7).abs().max().item<double>(),
            0);
}

TEST(EncoderPackedTest, PackRowsNumbersPositionsLikeHuggingFace) {
  EncoderConfig bert;
  bert.family = EncoderFamily::kBert;
  bert.position_offset = 0;
  HostRows rows = MakeRows({{5, 6, 7}, {8}});
  PackedInputs p = PackRows(rows.Views(), bert, c10::Device(c10::kCPU));
  EXPECT_TRUE(at::equal(p.position_ids, at::tensor({0, 1, 2, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(p.padded_index, at::tensor({0, 1, 2, 3}, at::kLong)));
  EXPECT_EQ(p.rows, 2);
  EXPECT_EQ(p.longest, 3);
  ASSERT_TRUE(p.attention_mask.defined());
  EXPECT_TRUE(
      at::equal(p.attention_mask,
                at::tensor({1, 1, 1, 1, 0, 0}, at::kLong).view({2, 3})));

  EncoderConfig roberta;
  roberta.family = EncoderFamily::kRoberta;
  roberta.pad_token_id = 1;
  HostRows with_pad = MakeRows({{0, 5, 1, 6}});
  PackedInputs q = PackRows(with_pad.Views(), roberta, c10::Device(c10::kCPU));
  EXPECT_TRUE(at::equal(q.position_ids, at::tensor({2, 3, 1, 4}, at::kLong)));
  EXPECT_FALSE(q.attention_mask.defined());
}

// ---- training-time dropout ----

Dropout SeededDropout(const Encoder& encoder, uint64_t seed, double hidden,
                      double attention) {
  auto generator = MakeGenerator(c10::Device(c10::kCPU), seed);
  EXPECT_TRUE(generator.ok()) << generator.status();
  Dropout d = Dropout::FromConfig(encoder.config(), *generator);
  d.hidden = hidden;
  d.attention = attention;
  return d;
}

TEST(EncoderDropoutTest, NoDropoutIsDeterministicAndRatesZeroChangeNothing) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  auto a = encoder->Forward(SomeInputs());
  auto b = encoder->Forward(SomeInputs());
  Dropout zero = SeededDropout(*encoder, 1, 0.0, 0.0);
  auto c = encoder->Forward(SomeInputs(), nullptr, &zero);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(at::equal(a->last_hidden_state, b->last_hidden_state));
  EXPECT_TRUE(at::equal(a->last_hidden_state, c->last_hidden_state));
}

TEST(EncoderDropoutTest, MasksFollowTheGeneratorSeed) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  for (auto [hidden, attention] : {std::pair(0.1, 0.0), std::pair(0.0, 0.1)}) {
    Dropout s1 = SeededDropout(*encoder, 1, hidden, attention);
    Dropout s1_again = SeededDropout(*encoder, 1, hidden, attention);
    Dropout s2 = SeededDropout(*encoder, 2, hidden, attention);
    auto a = encoder->Forward(SomeInputs(), nullptr, &s1);
    auto b = encoder->Forward(SomeInputs(), nullptr, &s1_again);
    auto c = encoder->Forward(SomeInputs(), nullptr, &s2);
    auto plain = encoder->Forward(SomeInputs());
    ASSERT_TRUE(a.ok() && b.ok() && c.ok() && plain.ok());
    EXPECT_TRUE(at::equal(a->last_hidden_state, b->last_hidden_state));
    EXPECT_FALSE(at::allclose(a->last_hidden_state, c->last_hidden_state));
    EXPECT_FALSE(at::allclose(a->last_hidden_state, plain->last_hidden_state));
    // The generator advanced: a second forward draws new masks.
    auto next = encoder->Forward(SomeInputs(), nullptr, &s1);
    ASSERT_TRUE(next.ok());
    EXPECT_FALSE(at::allclose(a->last_hidden_state, next->last_hidden_state));
  }
}

TEST(EncoderDropoutTest, AttentionDropoutPathEqualsSdpaAtRateZeroPlus) {
  // The spelled-out attention (taken when attention dropout > 0) must
  // compute what SDPA computes; a rate so small that no mask element drops
  // only rescales by 1 / (1 - p).
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  Dropout tiny = SeededDropout(*encoder, 3, 0.0, 1e-12);
  auto manual = encoder->Forward(SomeInputs(), nullptr, &tiny);
  auto sdpa = encoder->Forward(SomeInputs());
  ASSERT_TRUE(manual.ok() && sdpa.ok());
  EXPECT_TRUE(at::allclose(manual->last_hidden_state, sdpa->last_hidden_state,
                           1e-5, 1e-5));
}

TEST(EncoderDropoutTest, OutputsCarryTheAttentionMask) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  auto out = encoder->Forward(SomeInputs());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->attention_mask.defined());
  EXPECT_TRUE(at::equal(out->attention_mask.to(at::kLong),
                        SomeInputs().attention_mask));
}

// ---- the LinearHook seam ----

// Plain linear that records which layers it was asked for.
class RecordingHook : public LinearHook {
 public:
  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(id);
    return at::linear(x, weight, bias);
  }
  std::vector<LinearId> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::vector<LinearId> calls_;
};

TEST(EncoderHookTest, HookSeesEveryAdaptableLinearOnceInOrder) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  RecordingHook hook;
  auto hooked = encoder->Forward(SomeInputs(), &hook);
  auto plain = encoder->Forward(SomeInputs());
  ASSERT_TRUE(hooked.ok() && plain.ok());
  EXPECT_TRUE(at::equal(hooked->last_hidden_state, plain->last_hidden_state));

  std::vector<LinearKind> all(std::begin(kAllLinearKinds),
                              std::end(kAllLinearKinds));
  const std::vector<LinearId> expected = encoder->LinearIds(all);
  ASSERT_EQ(expected.size(), 12u);  // 2 layers x 6
  EXPECT_EQ(hook.calls(), expected);
  EXPECT_EQ(expected[7].ModulePath(), "encoder.layer.1.attention.self.key");
  EXPECT_EQ(expected[9].ModulePath(), "encoder.layer.1.attention.output.dense");
  EXPECT_EQ(LinearKindName(LinearKind::kAttentionOutput), "attention.output");

  const std::vector<LinearId> qv =
      encoder->LinearIds({LinearKind::kValue, LinearKind::kQuery});
  ASSERT_EQ(qv.size(), 4u);
  EXPECT_EQ(qv[0], (LinearId{0, LinearKind::kQuery}));
  EXPECT_EQ(qv[3], (LinearId{1, LinearKind::kValue}));
}

TEST(EncoderHookTest, WeightAccessorsMatchTheHookArguments) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  const LinearId id{1, LinearKind::kIntermediate};
  auto w = encoder->LinearWeight(id);
  auto b = encoder->LinearBias(id);
  ASSERT_TRUE(w.ok() && b.ok());
  EXPECT_EQ(w->sizes(), (at::IntArrayRef{37, 32}));
  EXPECT_EQ(b->sizes(), (at::IntArrayRef{37}));
  EXPECT_FALSE(w->requires_grad());
  EXPECT_EQ(encoder->InFeatures(LinearKind::kOutput), 37);
  EXPECT_EQ(encoder->OutFeatures(LinearKind::kOutput), 32);
  EXPECT_EQ(encoder->OutFeatures(LinearKind::kIntermediate), 37);
  auto tensors = LoadFixtureTensors(TinyBert() + "/model.safetensors");
  EXPECT_TRUE(
      at::equal(*w, tensors.at("encoder.layer.1.intermediate.dense.weight")));
  EXPECT_EQ(encoder->LinearWeight({2, LinearKind::kQuery}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(encoder->weights().NamedTensors().size(), tensors.size());
}

// A LoRA-style hook: y = x W^T + b + x A^T B^T on one layer.
class LowRankHook : public LinearHook {
 public:
  LowRankHook(LinearId target, at::Tensor a, at::Tensor b)
      : target_(target), a_(std::move(a)), b_(std::move(b)) {}
  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override {
    at::Tensor y = at::linear(x, weight, bias);
    if (id == target_) y = y + at::linear(at::linear(x, a_), b_);
    return y;
  }

 private:
  LinearId target_;
  at::Tensor a_, b_;
};

TEST(EncoderHookTest, GradientsFlowIntoHookTensorsOnly) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  at::Tensor a = (at::randn({2, 32}) * 0.1).set_requires_grad(true);
  at::Tensor b = (at::randn({32, 2}) * 0.1).set_requires_grad(true);
  LowRankHook hook({0, LinearKind::kValue}, a, b);
  auto out = encoder->Forward(SomeInputs(), &hook);
  ASSERT_TRUE(out.ok()) << out.status();
  out->pooler_output.sum().backward();
  ASSERT_TRUE(a.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_GT(a.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(b.grad().abs().sum().item<double>(), 0.0);
  for (const auto& [name, t] : encoder->weights().NamedTensors()) {
    EXPECT_FALSE(t.grad().defined()) << name;
  }
  // And the update changes the output.
  auto plain = encoder->Forward(SomeInputs());
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(
      at::allclose(plain->last_hidden_state, out->last_hidden_state.detach()));
}

class WrongShapeHook : public LinearHook {
 public:
  at::Tensor Apply(const LinearId&, const at::Tensor& x, const at::Tensor&,
                   const at::Tensor&) const override {
    return x.narrow(-1, 0, 3);
  }
};

// Plain linears, but a fused query/key/value of the wrong width.
class WrongFusedShapeHook : public LinearHook {
 public:
  at::Tensor Apply(const LinearId&, const at::Tensor& x, const at::Tensor& w,
                   const at::Tensor& b) const override {
    return at::linear(x, w, b);
  }
  std::optional<std::array<at::Tensor, 3>> ApplyQueryKeyValue(
      int64_t, const at::Tensor& x) const override {
    return std::array<at::Tensor, 3>{x, x, x.narrow(-1, 0, 3)};
  }
};

class ThrowingHook : public LinearHook {
 public:
  at::Tensor Apply(const LinearId&, const at::Tensor&, const at::Tensor&,
                   const at::Tensor&) const override {
    throw std::runtime_error("hook exploded");
  }
};

TEST(EncoderHookTest, BrokenHooksBecomeStatuses) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  WrongShapeHook wrong;
  auto out = encoder->Forward(SomeInputs(), &wrong);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("LinearHook for encoder.layer.0.attention.self.query"));
  WrongFusedShapeHook wrong_fused;
  out = encoder->Forward(SomeInputs(), &wrong_fused);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("LinearHook::ApplyQueryKeyValue for "
                        "encoder.layer.0.attention.self.value returned"));
  ThrowingHook throwing;
  out = encoder->Forward(SomeInputs(), &throwing);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("hook exploded"));
}

// ---- modes and threads ----

TEST(EncoderModeTest, InferenceModeGivesIdenticalResults) {
  auto encoder = LoadTiny(ModelFixture("tiny-roberta"));
  ASSERT_NE(encoder, nullptr);
  EncoderInputs in = SomeInputs();
  in.token_type_ids = at::Tensor();  // RoBERTa has one token type
  auto normal = encoder->Forward(in);
  ASSERT_TRUE(normal.ok()) << normal.status();
  c10::InferenceMode guard;
  RecordingHook hook;
  auto inference = encoder->Forward(in, &hook);
  ASSERT_TRUE(inference.ok()) << inference.status();
  EXPECT_TRUE(inference->last_hidden_state.is_inference());
  EXPECT_TRUE(
      at::equal(normal->last_hidden_state, inference->last_hidden_state));
  EXPECT_TRUE(at::equal(normal->pooler_output, inference->pooler_output));
}

TEST(EncoderModeTest, LoadingUnderInferenceModeStillAllowsAutograd) {
  std::unique_ptr<Encoder> encoder;
  {
    c10::InferenceMode guard;
    encoder = LoadTiny();
  }
  ASSERT_NE(encoder, nullptr);
  at::Tensor a = (at::randn({2, 32}) * 0.1).set_requires_grad(true);
  LowRankHook hook({1, LinearKind::kQuery}, a, at::randn({32, 2}) * 0.1);
  auto out = encoder->Forward(SomeInputs(), &hook);
  ASSERT_TRUE(out.ok()) << out.status();
  out->last_hidden_state.sum().backward();
  EXPECT_TRUE(a.grad().defined());
}

TEST(EncoderModeTest, ConcurrentForwardsAgree) {
  auto encoder = LoadTiny();
  ASSERT_NE(encoder, nullptr);
  auto reference = encoder->Forward(SomeInputs());
  ASSERT_TRUE(reference.ok());
  std::vector<at::Tensor> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      c10::InferenceMode guard;
      for (int i = 0; i < 5; ++i) {
        auto out = encoder->Forward(SomeInputs());
        if (out.ok()) results[t] = out->last_hidden_state;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const at::Tensor& r : results) {
    ASSERT_TRUE(r.defined());
    EXPECT_TRUE(at::allclose(r, reference->last_hidden_state, 1e-6, 1e-6));
  }
}

TEST(EncoderModeTest, DoublePrecisionAgreesWithFloat) {
  auto f32 = LoadTiny();
  auto f64 = Encoder::Load(TinyBert(), {.dtype = c10::kDouble});
  ASSERT_TRUE(f64.ok()) << f64.status();
  auto a = f32->Forward(SomeInputs());
  auto b = (*f64)->Forward(SomeInputs());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->last_hidden_state.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::allclose(a->last_hidden_state.to(at::kDouble),
                           b->last_hidden_state, 1e-5, 1e-5));
  EXPECT_FALSE(Encoder::Load(TinyBert(), {.dtype = c10::kLong}).ok());
}

}  // namespace
}  // namespace dylora
