// Texts from arguments, files and stdin; TAB-separated pairs.
#include "client/text_input.h"

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TextInputTest, ParsesSingleTextsAndPairs) {
  auto single = ParseTextItem("a fine film", "argument 1");
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(*single, (TextItem{"a fine film", ""}));
  auto pair = ParseTextItem("the cat sat\ta cat was sitting", "argument 1");
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(*pair, (TextItem{"the cat sat", "a cat was sitting"}));
}

TEST(TextInputTest, RefusesEmptyTextsAndExtraTabs) {
  auto empty = ParseTextItem("  ", "in.txt:4");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("in.txt:4"));
  auto empty_pair = ParseTextItem("text\t ", "in.txt:5");
  ASSERT_FALSE(empty_pair.ok());
  EXPECT_THAT(std::string(empty_pair.status().message()), HasSubstr("pair"));
  auto tabs = ParseTextItem("a\tb\tc", "in.txt:6");
  ASSERT_FALSE(tabs.ok());
  EXPECT_THAT(std::string(tabs.status().message()), HasSubstr("2 TABs"));
}

TEST(TextInputTest, LinesSkipBlanksAndHandleCrlf) {
  auto items = ParseTextLines("first\r\n\n  \nsecond\tpair\r\nthird", "in.txt");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_THAT(*items,
              ElementsAre(TextItem{"first", ""}, TextItem{"second", "pair"},
                          TextItem{"third", ""}));
}

TEST(TextInputTest, ErrorsNameTheLine) {
  auto items = ParseTextLines("fine\n\na\tb\tc\n", "in.txt");
  ASSERT_FALSE(items.ok());
  EXPECT_THAT(std::string(items.status().message()), HasSubstr("in.txt:3"));
}

TEST(TextInputTest, ReadsArgumentsStdinAndFileInOrder) {
  dylora::testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/texts.txt";
  std::ofstream(path) << "from file\nfile pair a\tfile pair b\n";
  std::istringstream stdin_stream("from stdin 1\nfrom stdin 2\n");
  auto items = ReadTexts({"arg one", "-", "arg\tpair"}, path, stdin_stream);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_THAT(*items,
              ElementsAre(TextItem{"arg one", ""}, TextItem{"from stdin 1", ""},
                          TextItem{"from stdin 2", ""}, TextItem{"arg", "pair"},
                          TextItem{"from file", ""},
                          TextItem{"file pair a", "file pair b"}));
}

TEST(TextInputTest, FileDashReadsStdin) {
  std::istringstream stdin_stream("only line\n");
  auto items = ReadTexts({}, "-", stdin_stream);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_THAT(*items, ElementsAre(TextItem{"only line", ""}));
}

TEST(TextInputTest, NothingToClassifyIsAnError) {
  std::istringstream empty_stdin("");
  auto none = ReadTexts({}, "", empty_stdin);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("no texts"));
  std::istringstream blank_stdin("\n\n");
  EXPECT_FALSE(ReadTexts({"-"}, "", blank_stdin).ok());
}

TEST(TextInputTest, MissingFileIsNamed) {
  std::istringstream stdin_stream("");
  auto items = ReadTexts({}, "/nonexistent/texts.txt", stdin_stream);
  ASSERT_FALSE(items.ok());
  EXPECT_EQ(items.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(items.status().message()),
              HasSubstr("/nonexistent/texts.txt"));
}

}  // namespace
}  // namespace dylora::client
