#include "core/adapter/adapter_io.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/adapter/adapter_json.h"
#include "core/io/torch_tensors.h"
#include "core/model/pooling.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/adapter/adapter_test_util.h"

namespace dylora {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::LoadTinyBert;
using testing::RandomAdapter;
using testing::ScopedTempDir;

std::string Slurp(const std::string& path) {
  auto text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

void Spit(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomically(path, text).ok());
}

class AdapterIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    encoder_ = LoadTinyBert();
    ASSERT_NE(encoder_, nullptr);
    AdapterConfig config;
    config.r_min = 2;
    config.update_mode = UpdateMode::kFull;
    config.rank_distribution = *RankDistribution::Parse("geometric:0.25");
    config.base_model_name_or_path = "tiny-bert";
    config.head = HeadKind::kMeanPooled;  // not the family's default
    adapter_ = RandomAdapter(*encoder_, config);
    ASSERT_NE(adapter_, nullptr);
    RankMetrics m;
    m.metric = "f1";
    m.values = {{2, 0.5}, {3, 0.75}, {8, 0.8125}};
    m.Recommend(0.1);
    adapter_->set_rank_metrics(m);
    dir_ = tmp_.path() + "/adapter";
    ASSERT_TRUE(SaveAdapter(*adapter_, dir_).ok());
  }

  // Saves, edits the config JSON with `edit`, and returns LoadAdapter's status.
  absl::Status LoadWithConfigEdit(
      const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(Slurp(dir_ + "/" + kAdapterConfigFile));
    edit(j);
    Spit(dir_ + "/" + kAdapterConfigFile, j.dump());
    return LoadAdapter(dir_, *encoder_).status();
  }

  absl::Status LoadWithTensors(
      const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    EXPECT_TRUE(SaveTensors(dir_ + "/" + kAdapterWeightsFile, tensors).ok());
    return LoadAdapter(dir_, *encoder_).status();
  }

  std::vector<std::pair<std::string, at::Tensor>> SavedTensors() {
    auto loaded = LoadTensors(dir_ + "/" + kAdapterWeightsFile);
    EXPECT_TRUE(loaded.ok());
    return {loaded->begin(), loaded->end()};
  }

  ScopedTempDir tmp_;
  std::string dir_;
  std::unique_ptr<Encoder> encoder_;
  std::unique_ptr<DyLoraAdapter> adapter_;
};

TEST_F(AdapterIoTest, SaveLoadRoundTripIsBitExact) {
  EXPECT_TRUE(fs::exists(dir_ + "/adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir_ + "/adapter_model.safetensors"));
  auto loaded = LoadAdapter(dir_, *encoder_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const DyLoraAdapter& a = **loaded;
  ASSERT_EQ(a.factors().size(), adapter_->factors().size());
  for (const auto& [id, f] : adapter_->factors()) {
    const LoraFactors* g = a.Find(id);
    ASSERT_NE(g, nullptr) << id.ModulePath();
    EXPECT_TRUE(at::equal(f.down, g->down)) << id.ModulePath();
    EXPECT_TRUE(at::equal(f.up, g->up)) << id.ModulePath();
  }
  ASSERT_EQ(a.head().size(), adapter_->head().size());
  for (const auto& [name, t] : adapter_->head()) {
    const at::Tensor* u = a.FindHeadTensor(name);
    ASSERT_NE(u, nullptr) << name;
    EXPECT_TRUE(at::equal(t, *u)) << name;
  }
  const AdapterConfig& c = a.config();
  EXPECT_EQ(c.alpha, 16.0);
  EXPECT_EQ(c.r_min, 2);
  EXPECT_EQ(c.r_max, 8);
  EXPECT_EQ(c.update_mode, UpdateMode::kFull);
  EXPECT_EQ(c.rank_distribution.ToString(), "geometric:0.25");
  EXPECT_EQ(c.target_kinds,
            (std::vector<LinearKind>{LinearKind::kQuery, LinearKind::kValue}));
  EXPECT_EQ(c.base_model_fingerprint, encoder_->fingerprint());
  EXPECT_EQ(c.base_model_name_or_path, "tiny-bert");
  EXPECT_EQ(c.family, EncoderFamily::kBert);
  const RankMetrics& m = a.rank_metrics();
  EXPECT_EQ(m.metric, "f1");
  EXPECT_EQ(m.values, adapter_->rank_metrics().values);
  EXPECT_EQ(m.best_rank, 8);
  EXPECT_EQ(m.smallest_rank_within_tolerance, 3);
  EXPECT_DOUBLE_EQ(m.tolerance, 0.1);
  // Saving the loaded adapter writes the same bytes.
  const std::string again = tmp_.path() + "/again";
  ASSERT_TRUE(SaveAdapter(a, again).ok());
  EXPECT_TRUE(Slurp(again + "/adapter_config.json") ==
              Slurp(dir_ + "/adapter_config.json"));
  EXPECT_TRUE(Slurp(again + "/adapter_model.safetensors") ==
              Slurp(dir_ + "/adapter_model.safetensors"));
}

TEST_F(AdapterIoTest, HeadKindIsStoredAndHonoured) {
  // A mean-pooled head: same tensor names as the pooler head, different
  // input, so the stored kind decides the logits.
  AdapterConfig config;
  config.head = HeadKind::kMeanPooled;
  auto head = ClassificationHead::Create(HeadKind::kMeanPooled,
                                         encoder_->config().hidden_size, 3, 5);
  ASSERT_TRUE(head.ok());
  auto mean_adapter =
      DyLoraAdapter::CreateFresh(*encoder_, config, head->named_tensors(), 5);
  ASSERT_TRUE(mean_adapter.ok()) << mean_adapter.status();
  const std::string dir = tmp_.path() + "/mean";
  ASSERT_TRUE(SaveAdapter(**mean_adapter, dir).ok());
  auto json = nlohmann::json::parse(Slurp(dir + "/adapter_config.json"));
  EXPECT_EQ(json["dylora"]["head"], "mean");

  auto loaded = LoadAdapter(dir, *encoder_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config().head_kind(), HeadKind::kMeanPooled);
  auto built = (*loaded)->BuildHead(*encoder_);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->kind(), HeadKind::kMeanPooled);
  at::Tensor ids =
      at::tensor({5, 17, 42, 99, 3, 8, 12, 0}, at::kLong).view({2, 4});
  at::Tensor mask =
      at::tensor({1, 1, 1, 1, 1, 1, 1, 0}, at::kLong).view({2, 4});
  auto out = encoder_->Forward({ids, {}, mask});
  ASSERT_TRUE(out.ok());
  auto logits = built->Forward(*out);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const at::Tensor expected =
      at::linear(*MeanPool(out->last_hidden_state, mask),
                 *(*loaded)->FindHeadTensor("classifier.weight"),
                 *(*loaded)->FindHeadTensor("classifier.bias"));
  EXPECT_TRUE(at::allclose(*logits, expected, 1e-6, 1e-6));

  // Without the field (PEFT adapters, older files): the family's HF head.
  json["dylora"].erase("head");
  Spit(dir + "/adapter_config.json", json.dump());
  auto legacy = LoadAdapter(dir, *encoder_);
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_FALSE((*legacy)->config().head.has_value());
  EXPECT_EQ((*legacy)->config().head_kind(), HeadKind::kBertPooled);
}

TEST_F(AdapterIoTest, FileUsesPeftNamesAndConfig) {
  auto tensors = SavedTensors();
  std::set<std::string> names;
  for (const auto& [n, t] : tensors) names.insert(n);
  EXPECT_TRUE(
      names.count("base_model.model.bert.encoder.layer.1.attention.self.value."
                  "lora_A.weight"));
  EXPECT_TRUE(names.count("base_model.model.classifier.weight"));
  EXPECT_TRUE(names.count("base_model.model.classifier.bias"));
  EXPECT_EQ(names.size(), 2u * 2 * 2 + 2);
  auto j = nlohmann::json::parse(Slurp(dir_ + "/adapter_config.json"));
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["r"], 8);
  EXPECT_EQ(j["lora_alpha"], 16);
  EXPECT_EQ(j["task_type"], "SEQ_CLS");
  EXPECT_EQ(j["modules_to_save"], nlohmann::json::array({"classifier"}));
  EXPECT_EQ(j["target_modules"], nlohmann::json::array({"query", "value"}));
  EXPECT_EQ(j["dylora"]["r_min"], 2);
  EXPECT_EQ(j["dylora"]["format_version"], 1);
}

TEST_F(AdapterIoTest, OverwriteIsAtomicAndKeepsOtherFiles) {
  Spit(dir_ + "/README.md", "notes");
  ASSERT_TRUE(SaveAdapter(*adapter_, dir_).ok());
  EXPECT_EQ(Slurp(dir_ + "/README.md"), "notes");
  // No staging/backup directories are left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp_.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  // A path that is a file is refused, not clobbered.
  Spit(tmp_.path() + "/file", "x");
  EXPECT_FALSE(SaveAdapter(*adapter_, tmp_.path() + "/file").ok());
  EXPECT_EQ(Slurp(tmp_.path() + "/file"), "x");
}

TEST_F(AdapterIoTest, ExportedSliceIsPlainPeftLoraOfRankB) {
  const std::string out = tmp_.path() + "/r3";
  ASSERT_TRUE(ExportPeftLora(*adapter_, 3, out).ok());
  auto j = nlohmann::json::parse(Slurp(out + "/adapter_config.json"));
  EXPECT_EQ(j["r"], 3);
  EXPECT_EQ(j["lora_alpha"], 16);
  EXPECT_EQ(j["dylora"]["r_min"], 3);
  EXPECT_EQ(j["dylora"]["r_max"], 3);
  auto plain = LoadAdapter(out, *encoder_);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->config().r_min, 3);
  EXPECT_EQ((*plain)->config().r_max, 3);
  // What plain PEFT fields cannot carry survives the slice.
  EXPECT_EQ((*plain)->config().base_model_fingerprint,
            adapter_->config().base_model_fingerprint);
  EXPECT_EQ((*plain)->config().head_kind(), adapter_->config().head_kind());
  for (const auto& [id, f] : adapter_->factors()) {
    const LoraFactors* g = (*plain)->Find(id);
    ASSERT_NE(g, nullptr);
    EXPECT_TRUE(at::equal(g->down, f.down.narrow(0, 0, 3)));
    EXPECT_TRUE(at::equal(g->up, f.up.narrow(1, 0, 3)));
  }
  EXPECT_FALSE(ExportPeftLora(*adapter_, 0, out).ok());
  EXPECT_FALSE(ExportPeftLora(*adapter_, 9, out).ok());
}

TEST_F(AdapterIoTest, RefusesOtherBackboneByFingerprint) {
  absl::Status s = LoadWithConfigEdit([](nlohmann::json& j) {
    j["dylora"]["base_model_fingerprint"] = "feedfacecafebeef";
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("feedfacecafebeef"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(encoder_->fingerprint()));
}

TEST_F(AdapterIoTest, RefusesCorruptOrInconsistentConfig) {
  const std::string good = Slurp(dir_ + "/adapter_config.json");
  Spit(dir_ + "/adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": ");
  auto s = LoadAdapter(dir_, *encoder_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("adapter_config.json"));

  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"not lora", [](auto& j) { j["peft_type"] = "IA3"; }, "peft_type"},
      {"r string", [](auto& j) { j["r"] = "8"; }, "\"r\""},
      {"r zero", [](auto& j) { j["r"] = 0; }, "\"r\""},
      {"alpha negative", [](auto& j) { j["lora_alpha"] = -1; }, "lora_alpha"},
      {"alpha missing", [](auto& j) { j.erase("lora_alpha"); }, "lora_alpha"},
      {"rslora", [](auto& j) { j["use_rslora"] = true; }, "use_rslora"},
      {"rank pattern",
       [](auto& j) {
         j["rank_pattern"] = {{"query", 4}};
       },
       "rank_pattern"},
      {"r_max mismatch", [](auto& j) { j["dylora"]["r_max"] = 4; }, "r_max"},
      {"alpha mismatch", [](auto& j) { j["dylora"]["alpha"] = 8; }, "alpha"},
      {"r_min above", [](auto& j) { j["dylora"]["r_min"] = 9; }, "r_min"},
      {"r_min zero", [](auto& j) { j["dylora"]["r_min"] = 0; }, "r_min"},
      {"bad distribution",
       [](auto& j) { j["dylora"]["rank_distribution"] = "zipf"; },
       "rank_distribution"},
      {"bad mode", [](auto& j) { j["dylora"]["update_mode"] = 3; },
       "update_mode"},
      {"bad version", [](auto& j) { j["dylora"]["format_version"] = 99; },
       "format_version"},
      {"targets mismatch",
       [](auto& j) {
         j["dylora"]["target_modules"] = {"query", "key"};
       },
       "target_modules"},
      {"unknown target",
       [](auto& j) { j["dylora"]["target_modules"] = {"dense"}; },
       "target_modules"},
      {"recommended out of range",
       [](auto& j) { j["dylora"]["recommended_ranks"]["best"] = 12; },
       "recommended_ranks.best"},
      {"metric rank out of range",
       [](auto& j) {
         j["dylora"]["rank_metrics"]["values"] = {
             {{"rank", 1}, {"value", 0.5}}};
       },
       "rank_metrics"},
      {"dylora not object", [](auto& j) { j["dylora"] = 5; }, "dylora"},
      {"unknown head", [](auto& j) { j["dylora"]["head"] = "attention"; },
       "dylora.head"},
      {"head not a string", [](auto& j) { j["dylora"]["head"] = 1; },
       "dylora.head"},
  };
  for (const Case& c : cases) {
    Spit(dir_ + "/adapter_config.json", good);
    absl::Status status = LoadWithConfigEdit(c.edit);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.expect)) << c.what;
  }
  Spit(dir_ + "/adapter_config.json", good);
  EXPECT_TRUE(LoadAdapter(dir_, *encoder_).ok());
}

// A NaN or Inf anywhere (a factor, the head, or a float64 value beyond
// float32's range) is refused with the tensor's name: such an adapter would
// give answers that depend on the other rows of a batch.
TEST_F(AdapterIoTest, RefusesNonFiniteTensorsNamingThem) {
  const auto good = SavedTensors();
  const std::vector<std::pair<std::string, float>> cases = {
      {"base_model.model.bert.encoder.layer.1.attention.self.value.lora_A."
       "weight",
       std::numeric_limits<float>::quiet_NaN()},
      {"base_model.model.bert.encoder.layer.0.attention.self.query.lora_B."
       "weight",
       -std::numeric_limits<float>::infinity()},
      {"base_model.model.classifier.weight",
       std::numeric_limits<float>::infinity()},
  };
  for (const auto& [name, value] : cases) {
    SCOPED_TRACE(name);
    auto tensors = good;
    bool found = false;
    for (auto& [n, t] : tensors) {
      if (n != name) continue;
      t = t.clone();
      t.view(-1)[t.numel() / 2] = value;
      found = true;
    }
    ASSERT_TRUE(found);
    const absl::Status s = LoadWithTensors(tensors);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()),
                AllOf(HasSubstr(name), HasSubstr("1 NaN or Inf value")));
  }
  auto wide = good;
  wide.front().second = wide.front().second.to(at::kDouble).clone();
  wide.front().second.view(-1)[0] = 1e300;  // finite, but not in float32
  const absl::Status s = LoadWithTensors(wide);
  EXPECT_THAT(std::string(s.message()), HasSubstr(wide.front().first));
}

TEST_F(AdapterIoTest, RefusesMissingWrongOrCorruptTensors) {
  const auto good = SavedTensors();
  const std::string a_name =
      "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A."
      "weight";
  const std::string b_name =
      "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B."
      "weight";
  auto without = [&](const std::string& name) {
    auto t = good;
    std::erase_if(t, [&](const auto& p) { return p.first == name; });
    return t;
  };
  auto replaced = [&](const std::string& name, at::Tensor value) {
    auto t = good;
    for (auto& p : t) {
      if (p.first == name) p.second = value;
    }
    return t;
  };
  absl::Status s = LoadWithTensors(without(b_name));
  EXPECT_THAT(std::string(s.message()), HasSubstr(b_name));
  s = LoadWithTensors(without(a_name));
  EXPECT_THAT(std::string(s.message()), HasSubstr(a_name));
  // r inconsistent across tensors.
  s = LoadWithTensors(replaced(a_name, at::zeros({4, 32})));
  EXPECT_THAT(std::string(s.message()), HasSubstr("r = 8"));
  // Shapes that do not fit the backbone's linear.
  s = LoadWithTensors(replaced(a_name, at::zeros({8, 16})));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("attention.self.query"));
  // A layer the backbone does not have.
  auto extra = good;
  extra.push_back(
      {"base_model.model.bert.encoder.layer.7.attention.self.query.lora_A."
       "weight",
       at::zeros({8, 32})});
  extra.push_back(
      {"base_model.model.bert.encoder.layer.7.attention.self.query.lora_B."
       "weight",
       at::zeros({32, 8})});
  s = LoadWithTensors(extra);
  EXPECT_THAT(std::string(s.message()), HasSubstr("encoder.layer.7"));
  // Unknown tensors are refused rather than ignored.
  auto unknown = good;
  unknown.push_back(
      {"base_model.model.bert.pooler.dense.lora_A.weight", at::zeros({8, 32})});
  EXPECT_FALSE(LoadWithTensors(unknown).ok());
  // Head of the wrong width.
  s = LoadWithTensors(
      replaced("base_model.model.classifier.weight", at::zeros({3, 31})));
  EXPECT_THAT(std::string(s.message()), HasSubstr("classifier.weight"));
  // Integer tensors.
  s = LoadWithTensors(replaced(b_name, at::zeros({32, 8}, at::kLong)));
  EXPECT_THAT(std::string(s.message()), HasSubstr("floating"));
  // Corrupt bytes: truncated file, garbage header.
  ASSERT_TRUE(SaveTensors(dir_ + "/" + kAdapterWeightsFile, good).ok());
  std::string bytes = Slurp(dir_ + "/" + kAdapterWeightsFile);
  Spit(dir_ + "/" + kAdapterWeightsFile, bytes.substr(0, bytes.size() - 7));
  s = LoadAdapter(dir_, *encoder_).status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("adapter_model.safetensors"));
  Spit(dir_ + "/" + kAdapterWeightsFile,
       std::string("\x10\0\0\0\0\0\0\0{not json}!!!!!!", 24));
  EXPECT_FALSE(LoadAdapter(dir_, *encoder_).ok());
  fs::remove(dir_ + "/" + kAdapterWeightsFile);
  EXPECT_FALSE(LoadAdapter(dir_, *encoder_).ok());
  EXPECT_FALSE(LoadAdapter(tmp_.path() + "/nowhere", *encoder_).ok());
}

TEST(AdapterJsonTest, OutputKindUsesAnExactRegexForPeft) {
  AdapterConfig c;
  c.target_kinds = {LinearKind::kQuery, LinearKind::kOutput};
  auto j = nlohmann::json::parse(AdapterConfigToJson(c, {}, 8, true));
  ASSERT_TRUE(j["target_modules"].is_string());
  EXPECT_EQ(
      j["target_modules"],
      ".*encoder\\.layer\\.\\d+\\.(?:attention\\.self\\.query|output\\.dense)");
  auto parsed = ParseAdapterConfigJson(j.dump(), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.target_kinds, c.target_kinds);
}

}  // namespace
}  // namespace dylora
