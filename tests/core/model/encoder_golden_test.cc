// The encoder against Hugging Face transformers' own outputs (fixtures made
// by tests/fixtures/model/make_model_fixtures.py).
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/model/encoder.h"
#include "core/model/heads.h"
#include "core/model/pooling.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/model/model_test_util.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::dylora::testing::LoadFixtureTensors;
using ::dylora::testing::MaxAbsDiff;
using ::dylora::testing::ModelFixture;

constexpr double kTinyTolerance = 1e-5;
constexpr double kMiniLmTolerance = 1e-4;

class TinyGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string model_dir() const { return ModelFixture(GetParam()); }
  std::string golden_path() const {
    std::string name = GetParam();
    std::replace(name.begin(), name.end(), '-', '_');
    return ModelFixture(name + "_golden.safetensors");
  }
};

EncoderInputs Batch(const std::map<std::string, at::Tensor>& g, int k) {
  const std::string p = absl::StrCat("batch", k, ".");
  return {g.at(p + "input_ids"), g.at(p + "token_type_ids"),
          g.at(p + "attention_mask")};
}

TEST_P(TinyGoldenTest, MatchesTransformers) {
  auto encoder = Encoder::Load(model_dir());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  ASSERT_TRUE((*encoder)->has_pooler());
  EXPECT_EQ((*encoder)->fingerprint().size(), 16u);
  const auto golden = LoadFixtureTensors(golden_path());
  ASSERT_FALSE(golden.empty());

  std::map<std::string, at::Tensor> head_tensors;
  for (const auto& [name, t] : golden) {
    if (name.rfind("head.", 0) == 0) head_tensors[name.substr(5)] = t;
  }
  const EncoderConfig& config = (*encoder)->config();
  auto head = ClassificationHead::FromTensors(
      DefaultHeadKind(config.family), config.hidden_size, 3, head_tensors);
  ASSERT_TRUE(head.ok()) << head.status();

  double worst_hidden = 0, worst_pooler = 0, worst_logits = 0;
  int batches = 0;
  for (int k = 0; golden.count(absl::StrCat("batch", k, ".input_ids")); ++k) {
    SCOPED_TRACE(absl::StrCat("batch ", k));
    const std::string p = absl::StrCat("batch", k, ".");
    auto out = (*encoder)->Forward(Batch(golden, k));
    ASSERT_TRUE(out.ok()) << out.status();
    worst_hidden = std::max(
        worst_hidden,
        MaxAbsDiff(out->last_hidden_state, golden.at(p + "last_hidden_state")));
    worst_pooler = std::max(
        worst_pooler,
        MaxAbsDiff(out->pooler_output, golden.at(p + "pooler_output")));
    ++batches;
    auto logits = head->Forward(*out);
    ASSERT_TRUE(logits.ok()) << logits.status();
    worst_logits =
        std::max(worst_logits, MaxAbsDiff(*logits, golden.at(p + "logits")));
  }
  std::printf(
      "[%s] max abs diff: last_hidden_state %.3g, pooler %.3g, logits %.3g\n",
      GetParam().c_str(), worst_hidden, worst_pooler, worst_logits);
  EXPECT_EQ(batches, 4);
  EXPECT_LE(worst_hidden, kTinyTolerance);
  EXPECT_LE(worst_pooler, kTinyTolerance);
  EXPECT_LE(worst_logits, kTinyTolerance);

  // Negative control: the comparison is sensitive enough to see the padding
  // mask ignored (batch 1 has padded rows).
  EncoderInputs unmasked = Batch(golden, 1);
  unmasked.attention_mask = at::Tensor();
  auto wrong = (*encoder)->Forward(unmasked);
  ASSERT_TRUE(wrong.ok());
  EXPECT_GT(MaxAbsDiff(wrong->last_hidden_state,
                       golden.at("batch1.last_hidden_state")),
            1e-3);
}

// A checkpoint saved from <Family>ForSequenceClassification: prefixed names,
// a classifier and the position_ids buffer, all of which must be accepted.
TEST_P(TinyGoldenTest, PrefixedCheckpointGivesSameOutputs) {
  auto plain = Encoder::Load(model_dir());
  ASSERT_TRUE(plain.ok()) << plain.status();
  const EncoderConfig& config = (*plain)->config();
  std::map<std::string, at::Tensor> prefixed;
  for (const auto& [name, t] :
       LoadFixtureTensors(model_dir() + "/model.safetensors")) {
    prefixed[config.model_type + "." + name] = t;
  }
  prefixed["classifier.weight"] = at::zeros({3, config.hidden_size});
  prefixed[config.model_type + ".embeddings.position_ids"] =
      at::arange(config.max_position_embeddings).unsqueeze(0);
  auto encoder = Encoder::FromTensors(config, prefixed);
  ASSERT_TRUE(encoder.ok()) << encoder.status();

  const auto golden = LoadFixtureTensors(golden_path());
  auto a = (*plain)->Forward(Batch(golden, 1));
  auto b = (*encoder)->Forward(Batch(golden, 1));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(at::equal(a->last_hidden_state, b->last_hidden_state));
  EXPECT_TRUE(at::equal(a->pooler_output, b->pooler_output));
}

INSTANTIATE_TEST_SUITE_P(Families, TinyGoldenTest,
                         ::testing::Values("tiny-bert", "tiny-roberta"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(MiniLmGoldenTest, MatchesTransformersOnSst2) {
  auto encoder = Encoder::Load(dylora::testing::ModelDir());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  const auto golden =
      LoadFixtureTensors(ModelFixture("minilm_sst2_golden.safetensors"));
  ASSERT_FALSE(golden.empty());

  std::vector<at::Tensor> pooler, cls, mean;
  at::Tensor first_hidden;
  for (int k = 0; golden.count(absl::StrCat("batch", k, ".input_ids")); ++k) {
    const EncoderInputs inputs = Batch(golden, k);
    auto out = (*encoder)->Forward(inputs);
    ASSERT_TRUE(out.ok()) << out.status();
    pooler.push_back(out->pooler_output);
    auto c = ClsPool(out->last_hidden_state);
    auto m = MeanPool(out->last_hidden_state, inputs.attention_mask);
    ASSERT_TRUE(c.ok() && m.ok());
    cls.push_back(*c);
    mean.push_back(*m);
    if (k == 0) first_hidden = out->last_hidden_state;
  }
  const at::Tensor head = golden.at("batch0.last_hidden_state_head");
  const double hidden_diff =
      MaxAbsDiff(first_hidden.slice(0, 0, head.size(0)), head);
  const double pooler_diff =
      MaxAbsDiff(at::cat(pooler), golden.at("pooler_output"));
  const double cls_diff = MaxAbsDiff(at::cat(cls), golden.at("cls"));
  const double mean_diff = MaxAbsDiff(at::cat(mean), golden.at("mean_pooled"));
  std::printf(
      "[MiniLM, %lld sentences] max abs diff: last_hidden_state(%lld rows) "
      "%.3g, "
      "pooler %.3g, cls %.3g, mean-pooled %.3g\n",
      static_cast<long long>(at::cat(pooler).size(0)),
      static_cast<long long>(head.size(0)), hidden_diff, pooler_diff, cls_diff,
      mean_diff);
  EXPECT_GE(at::cat(pooler).size(0), 50);
  EXPECT_LE(hidden_diff, kMiniLmTolerance);
  EXPECT_LE(pooler_diff, kMiniLmTolerance);
  EXPECT_LE(cls_diff, kMiniLmTolerance);
  EXPECT_LE(mean_diff, kMiniLmTolerance);
}

}  // namespace
}  // namespace dylora
