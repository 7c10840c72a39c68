#include "core/glue/glue.h"

#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

std::string GluePath(const std::string& task, const std::string& split) {
  return testing::DataDir() + "/glue/" + task + "/" + split + ".tsv";
}

struct RealFileCase {
  std::string folder;
  GlueTask task;
  size_t rows;
  std::string first_text_a;
  float first_label;
};

class RealGlueFileTest : public ::testing::TestWithParam<RealFileCase> {};

TEST_P(RealGlueFileTest, ReadsEveryDevRow) {
  const RealFileCase& c = GetParam();
  auto dataset = ReadGlueTsv(GluePath(c.folder, "dev"), c.task);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->examples.size(), c.rows);
  EXPECT_EQ(dataset->skipped_rows, 0);
  const Example& first = dataset->examples.front();
  EXPECT_EQ(first.text_a, c.first_text_a);
  EXPECT_FLOAT_EQ(first.label, c.first_label);
  EXPECT_EQ(first.text_b.has_value(), dataset->spec.is_pair);
}

INSTANTIATE_TEST_SUITE_P(
    Glue, RealGlueFileTest,
    ::testing::Values(
        RealFileCase{"SST-2", GlueTask::kSst2, 872,
                     "it 's a charming and often affecting journey . ", 1},
        RealFileCase{"CoLA", GlueTask::kCola, 1043,
                     "The sailors rode the breeze clear of the rocks.", 1},
        RealFileCase{"MRPC", GlueTask::kMrpc, 408,
                     "He said the foodservice pie business doesn 't fit the "
                     "company 's long-term growth strategy .",
                     1},
        RealFileCase{"RTE", GlueTask::kRte, 277,
                     "Dana Reeve, the widow of the actor Christopher Reeve, "
                     "has died of lung cancer at age 44, according to the "
                     "Christopher Reeve Foundation.",
                     1},
        RealFileCase{"QNLI", GlueTask::kQnli, 5463,
                     "What came into force after the new constitution was "
                     "herald?",
                     0},
        RealFileCase{"STS-B", GlueTask::kStsb, 1500,
                     "A man with a hard hat is dancing.", 5.0f}));

TEST(GlueTest, MrpcKeepsQuotesLiterally) {
  auto dataset = ReadGlueTsv(GluePath("MRPC", "dev"), GlueTask::kMrpc);
  ASSERT_TRUE(dataset.ok());
  EXPECT_EQ(dataset->examples.front().text_b.value().substr(0, 2), "\" ");
}

TEST(GlueTest, TaskNamesAreForgiving) {
  EXPECT_EQ(GlueTaskByName("SST-2")->task, GlueTask::kSst2);
  EXPECT_EQ(GlueTaskByName("sts-b")->task, GlueTask::kStsb);
  EXPECT_FALSE(GlueTaskByName("imdb").ok());
}

class BadRowsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& contents) {
    const std::string path = dir_.path() + "/data.tsv";
    EXPECT_TRUE(WriteFileAtomically(path, contents).ok());
    return path;
  }
  testing::ScopedTempDir dir_;
};

TEST_F(BadRowsTest, WrongColumnCountStopsWithFileAndLine) {
  const std::string path = Write("sentence\tlabel\ngood\t1\nno label here\n");
  auto dataset = ReadGlueTsv(path, GlueTask::kSst2);
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(std::string(dataset.status().message()),
              HasSubstr(path + ":3: expected 2 tab-separated columns"));
}

TEST_F(BadRowsTest, BadLabelStopsWithTheLabel) {
  const std::string path = Write("sentence\tlabel\ngood\t7\n");
  auto dataset = ReadGlueTsv(path, GlueTask::kSst2);
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(std::string(dataset.status().message()),
              HasSubstr(":2: label '7' is not one of 0, 1"));
}

TEST_F(BadRowsTest, SkippingCountsAndReportsBadRows) {
  const std::string path =
      Write("sentence\tlabel\ngood\t1\nbad\tx\n\t0\nfine\t0\n");
  auto dataset = ReadGlueTsv(path, GlueTask::kSst2, {.skip_bad_rows = true});
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->examples.size(), 2u);
  EXPECT_EQ(dataset->skipped_rows, 2);
  EXPECT_EQ(dataset->skipped_reasons.size(), 2u);
  EXPECT_EQ(dataset->examples[1].line, 5);
}

TEST_F(BadRowsTest, MissingHeaderColumnIsNamed) {
  const std::string path = Write("text\tlabel\nx\t1\n");
  auto dataset = ReadGlueTsv(path, GlueTask::kSst2);
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(std::string(dataset.status().message()),
              HasSubstr("no column 'sentence'"));
}

TEST_F(BadRowsTest, NonNumericScoreIsRejected) {
  const std::string path = Write(
      "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
      "sentence2\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\tfive\n");
  auto dataset = ReadGlueTsv(path, GlueTask::kStsb);
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(std::string(dataset.status().message()),
              HasSubstr("score 'five' is not a number"));
}

TEST_F(BadRowsTest, MnliAndQqpLayoutsAreFoundByColumnName) {
  // The published MNLI layout: gold_label last, parses in between.
  const std::string mnli = Write(
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
      "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\t"
      "sentence2\tlabel1\tgold_label\n"
      "0\t1\t1e\tgov\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tA man.\tA person."
      "\tentailment\tentailment\n");
  auto m = ReadGlueTsv(mnli, GlueTask::kMnli);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->examples[0].text_a, "A man.");
  EXPECT_EQ(m->examples[0].text_b, "A person.");
  EXPECT_FLOAT_EQ(m->examples[0].label, 0);
  const std::string qqp = Write(
      "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
      "5\t11\t12\tHow?\tWhy?\t1\n");
  auto q = ReadGlueTsv(qqp, GlueTask::kQqp);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->examples[0].text_b, "Why?");
  EXPECT_FLOAT_EQ(q->examples[0].label, 1);
}

TEST_F(BadRowsTest, MaxExamplesLimitsTheRead) {
  auto dataset =
      ReadGlueTsv(GluePath("SST-2", "train"), GlueTask::kSst2, {.max_examples = 100});
  ASSERT_TRUE(dataset.ok());
  EXPECT_EQ(dataset->examples.size(), 100u);
}

}  // namespace
}  // namespace dylora
