// End to end on the real all-MiniLM-L6-v2 and a slice of real SST-2: train a
// few dozen steps, write the adapter, reload it against the backbone, and
// check the per-rank table and reports.
#include "trainer/pipeline.h"

#include <filesystem>

#include "core/adapter/adapter_io.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

PipelineOptions SliceOptions(const std::string& output) {
  PipelineOptions o;
  o.model_dir = testing::ModelDir();
  o.task = "sst2";
  o.train_file = testing::DataDir() + "/glue/SST-2/train.tsv";
  o.dev_file = testing::DataDir() + "/glue/SST-2/dev.tsv";
  o.output_dir = output;
  o.max_seq_len = 32;
  o.max_train_examples = 192;
  o.max_dev_examples = 48;
  o.checkpoint_every = 12;
  o.trainer.batch_size = 8;
  o.trainer.max_steps = 24;
  o.trainer.learning_rate = 2e-3;
  return o;
}

TEST(PipelineTest, TrainsWritesReloadsAndTablesEveryRank) {
  testing::ScopedTempDir dir;
  const std::string out = dir.path() + "/sst2";
  auto result = RunTrainingPipeline(SliceOptions(out));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 24);
  ASSERT_EQ(result->rank_metrics.values.size(), 8u);
  for (int64_t r = 1; r <= 8; ++r) {
    EXPECT_EQ(result->rank_metrics.values[r - 1].first, r);
    EXPECT_GE(result->rank_metrics.values[r - 1].second, 0.0);
    EXPECT_LE(result->rank_metrics.values[r - 1].second, 1.0);
  }
  EXPECT_TRUE(result->rank_metrics.best_rank.has_value());
  ASSERT_EQ(result->all_metrics.size(), 8u);
  EXPECT_EQ(result->all_metrics[0].second.front().first, "accuracy");
  EXPECT_EQ(result->all_metrics[0].second.front().second,
            result->rank_metrics.values[0].second);

  auto encoder = Encoder::Load(testing::ModelDir());
  ASSERT_TRUE(encoder.ok());
  auto adapter = LoadAdapter(out, **encoder);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  EXPECT_EQ((*adapter)->rank_metrics().values, result->rank_metrics.values);
  for (const char* report :
       {"rank_table.csv", "rank_table.json", "rank_table.svg"}) {
    auto text = ReadFileToString(out + "/" + report);
    ASSERT_TRUE(text.ok()) << report;
    EXPECT_FALSE(text->empty());
  }
  EXPECT_THAT(*ReadFileToString(out + "/rank_table.svg"), HasSubstr("<svg"));
  EXPECT_TRUE(std::filesystem::exists(
      out + "/checkpoints/step-24/optimizer.safetensors"));
  EXPECT_TRUE(
      std::filesystem::exists(out + "/checkpoints/step-24/rng.safetensors"));
  // The checkpoint declares mean pooling: the adapter records and uses it.
  EXPECT_EQ((*adapter)->config().head_kind(), HeadKind::kMeanPooled);
  // result.json: settings, dropout from config.json, every rank's metrics.
  auto result_json =
      nlohmann::json::parse(*ReadFileToString(out + "/result.json"));
  EXPECT_EQ(result_json["format"], "dylora-run/1");
  EXPECT_EQ(result_json["head"], "mean");
  EXPECT_EQ(result_json["hyper"]["hidden_dropout"], 0.1);
  EXPECT_EQ(result_json["hyper"]["attention_dropout"], 0.1);
  EXPECT_EQ(result_json["steps"], 24);
  ASSERT_EQ(result_json["ranks"].size(), 8u);
  EXPECT_EQ(result_json["ranks"][2]["rank"], 3);
  EXPECT_EQ(result_json["ranks"][2]["metrics"]["accuracy"].get<double>(),
            result->rank_metrics.values[2].second);
  EXPECT_FALSE(std::filesystem::exists(out + "/checkpoints/step-12"));

  // An existing adapter is not overwritten without being asked.
  auto again = RunTrainingPipeline(SliceOptions(out));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(PipelineTest, HeadCanBeChosenAndAnUnknownOneIsRefused) {
  testing::ScopedTempDir dir;
  PipelineOptions options = SliceOptions(dir.path() + "/pooler");
  options.head = "pooler";
  options.trainer.max_steps = 2;
  options.max_dev_examples = 8;
  options.checkpoint_every = 0;
  auto result = RunTrainingPipeline(options);
  ASSERT_TRUE(result.ok()) << result.status();
  auto encoder = Encoder::Load(testing::ModelDir());
  ASSERT_TRUE(encoder.ok());
  auto adapter = LoadAdapter(options.output_dir, **encoder);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  EXPECT_EQ((*adapter)->config().head_kind(), HeadKind::kBertPooled);

  options.output_dir = dir.path() + "/bad";
  options.head = "attention";
  auto bad = RunTrainingPipeline(options);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("attention"));
}

TEST(PipelineTest, FullFineTuningWritesALoadableModel) {
  testing::ScopedTempDir dir;
  const std::string out = dir.path() + "/full";
  PipelineOptions options = SliceOptions(out);
  options.trainer.method = TrainMethod::kFull;
  options.trainer.max_steps = 4;
  options.trainer.learning_rate = 1e-4;
  options.checkpoint_every = 0;
  auto result = RunTrainingPipeline(options);
  ASSERT_TRUE(result.ok()) << result.status();
  auto reloaded = Encoder::Load(out);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  auto original = Encoder::Load(testing::ModelDir());
  EXPECT_NE((*reloaded)->fingerprint(), (*original)->fingerprint());
  ASSERT_EQ(result->rank_metrics.values.size(), 8u);
  EXPECT_EQ(result->rank_metrics.values.front().second,
            result->rank_metrics.values.back().second);
}

TEST(PipelineTest, MalformedTrainingRowStopsWithFileAndLine) {
  testing::ScopedTempDir dir;
  const std::string train = dir.path() + "/train.tsv";
  ASSERT_TRUE(
      WriteFileAtomically(train, "sentence\tlabel\ngood\t1\nbad row\n").ok());
  PipelineOptions options = SliceOptions(dir.path() + "/out");
  options.train_file = train;
  auto result = RunTrainingPipeline(options);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(train + ":3:"));
}

}  // namespace
}  // namespace dylora
