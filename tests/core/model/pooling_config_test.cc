// The pooling a checkpoint declares in the sentence-transformers layout.
#include "core/model/pooling_config.h"

#include <filesystem>
#include <string>

#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::dylora::testing::ScopedTempDir;
using ::testing::HasSubstr;

constexpr char kModules[] = R"([
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
])";

std::string PoolingJson(bool cls, bool mean, bool max, bool sqrt_len) {
  auto b = [](bool v) { return v ? "true" : "false"; };
  return std::string("{\"word_embedding_dimension\": 384, ") +
         "\"pooling_mode_cls_token\": " + b(cls) +
         ", \"pooling_mode_mean_tokens\": " + b(mean) +
         ", \"pooling_mode_max_tokens\": " + b(max) +
         ", \"pooling_mode_mean_sqrt_len_tokens\": " + b(sqrt_len) + "}";
}

// A model directory with modules.json and 1_Pooling/config.json.
void WriteDeclaration(const std::string& dir, const std::string& modules,
                      const std::string& pooling) {
  std::filesystem::create_directories(dir + "/1_Pooling");
  ASSERT_TRUE(WriteFileAtomically(dir + "/modules.json", modules).ok());
  ASSERT_TRUE(
      WriteFileAtomically(dir + "/1_Pooling/config.json", pooling).ok());
}

TEST(PoolingConfigTest, TheRealMiniLmDeclaresMeanPooling) {
  auto mode = ReadDeclaredPooling(testing::ModelDir());
  ASSERT_TRUE(mode.ok()) << mode.status();
  ASSERT_TRUE(mode->has_value());
  EXPECT_EQ(**mode, PoolingMode::kMean);
}

TEST(PoolingConfigTest, EachModeIsRead) {
  const std::pair<PoolingMode, std::string> cases[] = {
      {PoolingMode::kCls, PoolingJson(true, false, false, false)},
      {PoolingMode::kMean, PoolingJson(false, true, false, false)},
      {PoolingMode::kMax, PoolingJson(false, false, true, false)},
      {PoolingMode::kMeanSqrtLen, PoolingJson(false, false, false, true)},
  };
  for (const auto& [expected, json] : cases) {
    ScopedTempDir dir;
    WriteDeclaration(dir.path(), kModules, json);
    auto mode = ReadDeclaredPooling(dir.path());
    ASSERT_TRUE(mode.ok()) << mode.status();
    ASSERT_TRUE(mode->has_value());
    EXPECT_EQ(**mode, expected) << PoolingModeName(expected);
  }
}

TEST(PoolingConfigTest, NoDeclarationIsNotAnError) {
  ScopedTempDir plain;  // a Hugging Face checkpoint: no modules.json
  auto none = ReadDeclaredPooling(plain.path());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(ReadDeclaredPooling(testing::FixturesDir() + "/model/tiny-bert")
                   ->has_value());

  ScopedTempDir no_pooling;  // modules.json without a Pooling module
  ASSERT_TRUE(
      WriteFileAtomically(
          no_pooling.path() + "/modules.json",
          R"([{"path": "", "type": "sentence_transformers.models.Transformer"}])")
          .ok());
  auto still_none = ReadDeclaredPooling(no_pooling.path());
  ASSERT_TRUE(still_none.ok()) << still_none.status();
  EXPECT_FALSE(still_none->has_value());
}

TEST(PoolingConfigTest, BadDeclarationsAreRefusedWithTheirFile) {
  const std::pair<std::string, std::string> bad[] = {
      {PoolingJson(false, true, true, false), "exactly one pooling mode"},
      {PoolingJson(false, false, false, false), "found none"},
      {R"({"pooling_mode_mean_tokens": "yes"})", "must be a boolean"},
      {R"({"pooling_mode_mean_tokens": true, "pooling_mode_lasttoken": true})",
       "pooling_mode_lasttoken is not supported"},
      {R"({"pooling_mode_mean_tokens": true, "include_prompt": false})",
       "include_prompt"},
      {"[1, 2]", "must be a JSON object"},
      {"{not json", "not valid JSON"},
  };
  for (const auto& [json, message] : bad) {
    ScopedTempDir dir;
    WriteDeclaration(dir.path(), kModules, json);
    auto mode = ReadDeclaredPooling(dir.path());
    ASSERT_FALSE(mode.ok()) << json;
    EXPECT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(mode.status().message()),
                ::testing::AllOf(HasSubstr(message),
                                 HasSubstr("1_Pooling/config.json")))
        << json;
  }
}

TEST(PoolingConfigTest, ModulePathsMayNotLeaveTheModelDirectory) {
  for (const std::string path : {"../elsewhere", "/etc", "a/../../b"}) {
    ScopedTempDir dir;
    WriteDeclaration(
        dir.path(),
        R"([{"path": ")" + path +
            R"(", "type": "sentence_transformers.models.Pooling"}])",
        PoolingJson(false, true, false, false));
    auto mode = ReadDeclaredPooling(dir.path());
    ASSERT_FALSE(mode.ok()) << path;
    EXPECT_THAT(std::string(mode.status().message()),
                HasSubstr("modules.json"));
  }
  ScopedTempDir dir;
  WriteDeclaration(dir.path(), R"({"not": "a list"})",
                   PoolingJson(false, true, false, false));
  EXPECT_FALSE(ReadDeclaredPooling(dir.path()).ok());
}

}  // namespace
}  // namespace dylora
