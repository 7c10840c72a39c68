// Our DyLoRA forward against Hugging Face PEFT 0.17 (golden logits from
// tests/fixtures/adapter/make_adapter_fixtures.py), and our PEFT export
// against the files PEFT's own save_pretrained writes.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/adapter/adapter_hooks.h"
#include "core/adapter/adapter_io.h"
#include "core/io/torch_tensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/adapter/adapter_test_util.h"

namespace dylora {
namespace {

using testing::AdapterFixtures;
using testing::LoadGoldenLogits;
using testing::LoadTiny;
using testing::MaxAbsDiff;
using testing::ScopedTempDir;

constexpr double kTolerance = 1e-4;

// Parameter: the model family ("bert" / "roberta").
class PeftGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = GetParam() == "bert" ? "" : "_" + GetParam();
    encoder_ = LoadTiny(GetParam());
    ASSERT_NE(encoder_, nullptr);
    golden_ = LoadGoldenLogits(suffix_);
    ASSERT_EQ(golden_.logits.size(), 8u);
    auto adapter =
        LoadAdapter(AdapterFixtures() + "/dylora" + suffix_ + "_r8", *encoder_);
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    adapter_ = std::move(*adapter);
  }

  at::Tensor Logits(const DyLoraAdapter& adapter, const LinearHook& hook) {
    auto head = adapter.BuildHead(*encoder_);
    EXPECT_TRUE(head.ok()) << head.status();
    auto out = encoder_->Forward(golden_.inputs, &hook);
    EXPECT_TRUE(out.ok()) << out.status();
    auto logits = head->Forward(*out);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return *logits;
  }

  std::string PeftDir() const {
    return AdapterFixtures() + "/peft" + suffix_ + "_r" +
           std::to_string(golden_.peft_rank_saved);
  }

  std::string suffix_;
  std::unique_ptr<Encoder> encoder_;
  testing::GoldenLogits golden_;
  std::unique_ptr<DyLoraAdapter> adapter_;
};

TEST_P(PeftGoldenTest, PythonWrittenDyLoraAdapterLoads) {
  const AdapterConfig& c = adapter_->config();
  EXPECT_EQ(c.r_min, 1);
  EXPECT_EQ(c.r_max, 8);
  EXPECT_EQ(c.alpha, 16.0);
  EXPECT_EQ(adapter_->factors().size(), 4u);
  EXPECT_EQ(adapter_->rank_metrics().values.size(), 8u);
  EXPECT_EQ(adapter_->rank_metrics().best_rank, 8);
  EXPECT_EQ(adapter_->rank_metrics().smallest_rank_within_tolerance, 7);
}

TEST_P(PeftGoldenTest, RankBLogitsMatchPeftForEveryRank) {
  c10::InferenceMode inference;
  double worst = 0;
  for (const auto& [b, expected] : golden_.logits) {
    auto hook = AdapterHook::Create(*adapter_, RankSpec::Single(b));
    ASSERT_TRUE(hook.ok());
    const double diff = MaxAbsDiff(Logits(*adapter_, **hook), expected);
    EXPECT_LE(diff, kTolerance) << "rank " << b;
    worst = std::max(worst, diff);
  }
  // The ranks really differ (the comparison is not vacuous).
  EXPECT_GT(MaxAbsDiff(golden_.logits[1], golden_.logits[8]), 1e-2);
  std::ostringstream text;
  text << worst;
  RecordProperty("max_abs_diff_vs_peft", text.str());
}

TEST_P(PeftGoldenTest, MergedWeightsMatchPeftForEveryRank) {
  c10::InferenceMode inference;
  for (const auto& [b, expected] : golden_.logits) {
    auto merged = MergedWeights(*adapter_, *encoder_, b);
    ASSERT_TRUE(merged.ok()) << merged.status();
    MergedWeightsHook hook(std::move(*merged));
    EXPECT_LE(MaxAbsDiff(Logits(*adapter_, hook), expected), kTolerance)
        << "rank " << b;
  }
}

TEST_P(PeftGoldenTest, MixedRanksInOneBatchMatchPeft) {
  c10::InferenceMode inference;
  const std::vector<int64_t> ranks = {7, 2, 5};
  auto hook = AdapterHook::Create(
      *adapter_, RankSpec::PerRow(at::tensor(ranks, at::kLong)));
  ASSERT_TRUE(hook.ok());
  at::Tensor logits = Logits(*adapter_, **hook);
  for (size_t i = 0; i < ranks.size(); ++i) {
    EXPECT_LE(MaxAbsDiff(logits[i], golden_.logits[ranks[i]][i]), kTolerance)
        << "row " << i << " rank " << ranks[i];
  }
}

TEST_P(PeftGoldenTest, PeftSavedAdapterLoadsAsFixedRankDyLora) {
  const int64_t b = golden_.peft_rank_saved;
  auto plain = LoadAdapter(PeftDir(), *encoder_);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->config().r_min, b);
  EXPECT_EQ((*plain)->config().r_max, b);
  EXPECT_EQ((*plain)->config().target_kinds,
            (std::vector<LinearKind>{LinearKind::kQuery, LinearKind::kValue}));
  c10::InferenceMode inference;
  auto hook = AdapterHook::Create(**plain, RankSpec::Single(b));
  ASSERT_TRUE(hook.ok());
  EXPECT_LE(MaxAbsDiff(Logits(**plain, **hook), golden_.logits[b]), kTolerance);
  EXPECT_FALSE(AdapterHook::Create(**plain, RankSpec::Single(b - 1)).ok());
}

TEST_P(PeftGoldenTest, ExportedSliceMatchesPeftLayout) {
  ScopedTempDir tmp;
  const std::string ours = tmp.path() + "/slice";
  ASSERT_TRUE(ExportPeftLora(*adapter_, golden_.peft_rank_saved, ours).ok());
  const std::string theirs = PeftDir();
  // Same files.
  for (const char* file : {kAdapterConfigFile, kAdapterWeightsFile}) {
    EXPECT_TRUE(std::filesystem::exists(ours + "/" + file)) << file;
    EXPECT_TRUE(std::filesystem::exists(theirs + "/" + file)) << file;
  }
  // Same tensor names and shapes, and the values of the rank-4 slice.
  auto our_tensors = LoadTensors(ours + "/" + kAdapterWeightsFile);
  auto their_tensors = LoadTensors(theirs + "/" + kAdapterWeightsFile);
  ASSERT_TRUE(our_tensors.ok() && their_tensors.ok());
  std::set<std::string> our_names, their_names;
  for (const auto& [n, t] : *our_tensors) our_names.insert(n);
  for (const auto& [n, t] : *their_tensors) their_names.insert(n);
  EXPECT_EQ(our_names, their_names);
  for (const auto& [n, t] : *their_tensors) {
    auto it = our_tensors->find(n);
    if (it == our_tensors->end()) continue;
    EXPECT_EQ(it->second.sizes(), t.sizes()) << n;
    EXPECT_EQ(it->second.scalar_type(), t.scalar_type()) << n;
    EXPECT_TRUE(at::equal(it->second, t)) << n;
  }
  // Same config keys and the values that define the math.
  auto read = [](const std::string& path) {
    auto text = ReadFileToString(path);
    EXPECT_TRUE(text.ok());
    return nlohmann::json::parse(*text, nullptr, false);
  };
  nlohmann::json our_config = read(ours + "/" + kAdapterConfigFile);
  nlohmann::json their_config = read(theirs + "/" + kAdapterConfigFile);
  std::set<std::string> our_keys, their_keys;
  for (auto& [k, v] : our_config.items()) our_keys.insert(k);
  for (auto& [k, v] : their_config.items()) their_keys.insert(k);
  // PEFT's keys, plus the "dylora" section PEFT drops on load (the slice's
  // head kind and backbone fingerprint).
  their_keys.insert("dylora");
  EXPECT_EQ(our_keys, their_keys);
  for (const char* key :
       {"peft_type", "r", "lora_alpha", "target_modules", "bias", "task_type",
        "lora_dropout", "use_rslora", "use_dora", "fan_in_fan_out"}) {
    EXPECT_EQ(our_config[key], their_config[key]) << key;
  }
  // PEFT lists "classifier" (its SEQ_CLS defaults add more names).
  EXPECT_THAT(their_config["modules_to_save"].get<std::vector<std::string>>(),
              ::testing::Contains("classifier"));
  EXPECT_EQ(our_config["modules_to_save"],
            nlohmann::json::array({"classifier"}));
}

TEST(PeftFamilyTest, AdapterForOtherFamilyIsRefused) {
  auto roberta = LoadTiny("roberta");
  ASSERT_NE(roberta, nullptr);
  auto loaded = LoadAdapter(AdapterFixtures() + "/dylora_r8", *roberta);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()),
              ::testing::HasSubstr("named for a bert model"));
}

TEST(PeftFamilyTest, FreshRobertaAdapterUsesRobertaNames) {
  auto roberta = LoadTiny("roberta");
  ASSERT_NE(roberta, nullptr);
  auto adapter = testing::RandomAdapter(*roberta);
  ASSERT_NE(adapter, nullptr);
  ScopedTempDir tmp;
  ASSERT_TRUE(SaveAdapter(*adapter, tmp.path() + "/a").ok());
  auto tensors = LoadTensors(tmp.path() + "/a/" + kAdapterWeightsFile);
  ASSERT_TRUE(tensors.ok());
  EXPECT_TRUE(
      tensors->count("base_model.model.roberta.encoder.layer.0.attention.self."
                     "query.lora_B.weight"));
  EXPECT_TRUE(tensors->count("base_model.model.classifier.out_proj.weight"));
  auto loaded = LoadAdapter(tmp.path() + "/a", *roberta);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config().family, EncoderFamily::kRoberta);
}

INSTANTIATE_TEST_SUITE_P(Families, PeftGoldenTest,
                         ::testing::Values("bert", "roberta"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dylora
