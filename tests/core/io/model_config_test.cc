#include "core/io/model_config.h"

#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A minimal valid BERT config; tests patch fields into it.
nlohmann::json BaseConfig() {
  return {{"model_type", "bert"},
          {"vocab_size", 100},
          {"hidden_size", 64},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"intermediate_size", 128},
          {"max_position_embeddings", 32}};
}

absl::StatusOr<EncoderConfig> Parse(const nlohmann::json& j) {
  return ParseEncoderConfig(j.dump(), "test/config.json");
}

// Expects INVALID_ARGUMENT whose message names the origin and `field`.
void ExpectBadField(const nlohmann::json& j, const std::string& field,
                    const std::string& problem = "") {
  auto config = Parse(j);
  ASSERT_FALSE(config.ok()) << "accepted: " << j.dump();
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("test/config.json"));
  EXPECT_THAT(message, HasSubstr("'" + field + "'"));
  if (!problem.empty()) {
    EXPECT_THAT(message, HasSubstr(problem));
  }
}

TEST(ModelConfigTest, RealMiniLMConfig) {
  auto config = LoadEncoderConfig(testing::ModelDir());  // directory form
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->family, EncoderFamily::kBert);
  EXPECT_EQ(config->model_type, "bert");
  EXPECT_EQ(config->vocab_size, 30522);
  EXPECT_EQ(config->hidden_size, 384);
  EXPECT_EQ(config->num_hidden_layers, 6);
  EXPECT_EQ(config->num_attention_heads, 12);
  EXPECT_EQ(config->head_dim(), 32);
  EXPECT_EQ(config->intermediate_size, 1536);
  EXPECT_EQ(config->hidden_act, Activation::kGeluExact);
  EXPECT_EQ(config->max_position_embeddings, 512);
  EXPECT_EQ(config->type_vocab_size, 2);
  EXPECT_DOUBLE_EQ(config->layer_norm_eps, 1e-12);
  EXPECT_EQ(config->pad_token_id, 0);
  EXPECT_EQ(config->position_offset, 0);
  EXPECT_EQ(config->num_labels, 2);
  EXPECT_THAT(config->id2label, ElementsAre("LABEL_0", "LABEL_1"));

  auto by_file = LoadEncoderConfig(testing::ModelDir() + "/config.json");
  ASSERT_TRUE(by_file.ok()) << by_file.status();
  EXPECT_EQ(by_file->hidden_size, 384);
}

TEST(ModelConfigTest, DefaultsFollowBertConfig) {
  auto j = BaseConfig();
  j.erase("max_position_embeddings");
  j.erase("model_type");
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model_type, "bert");
  EXPECT_EQ(config->max_position_embeddings, 512);
  EXPECT_EQ(config->type_vocab_size, 2);
  EXPECT_EQ(config->pad_token_id, 0);
  EXPECT_DOUBLE_EQ(config->layer_norm_eps, 1e-12);
  EXPECT_EQ(config->hidden_act, Activation::kGeluExact);
  // null counts as absent.
  j["pad_token_id"] = nullptr;
  ASSERT_TRUE(Parse(j).ok());
}

TEST(ModelConfigTest, RobertaFamilyHasPositionOffset) {
  for (const char* type : {"roberta", "xlm-roberta", "camembert"}) {
    auto j = BaseConfig();
    j["model_type"] = type;
    j["pad_token_id"] = 1;
    j["type_vocab_size"] = 1;
    j["layer_norm_eps"] = 1e-5;
    auto config = Parse(j);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->family, EncoderFamily::kRoberta) << type;
    EXPECT_EQ(config->position_offset, 2) << type;
    EXPECT_EQ(config->type_vocab_size, 1);
    EXPECT_DOUBLE_EQ(config->layer_norm_eps, 1e-5);
  }
  auto j = BaseConfig();
  j["model_type"] = "roberta";
  j["pad_token_id"] = 5;
  EXPECT_EQ(Parse(j)->position_offset, 6);
  j.erase("pad_token_id");  // RobertaConfig's default pad is 1
  EXPECT_EQ(Parse(j)->position_offset, 2);
  j["max_position_embeddings"] = 2;  // no room after the offset
  ExpectBadField(j, "max_position_embeddings");
}

TEST(ModelConfigTest, Activations) {
  const std::pair<const char*, Activation> cases[] = {
      {"gelu", Activation::kGeluExact},
      {"gelu_new", Activation::kGeluTanh},
      {"gelu_pytorch_tanh", Activation::kGeluTanh},
      {"relu", Activation::kRelu},
      {"silu", Activation::kSilu},
      {"swish", Activation::kSilu}};
  for (const auto& [name, act] : cases) {
    auto j = BaseConfig();
    j["hidden_act"] = name;
    auto config = Parse(j);
    ASSERT_TRUE(config.ok()) << name;
    EXPECT_EQ(config->hidden_act, act) << name;
  }
  auto j = BaseConfig();
  j["hidden_act"] = "mish";
  ExpectBadField(j, "hidden_act", "mish");
  j["hidden_act"] = 3;
  ExpectBadField(j, "hidden_act", "must be a string");
}

TEST(ModelConfigTest, Labels) {
  auto j = BaseConfig();
  j["id2label"] = {{"1", "POSITIVE"}, {"0", "NEGATIVE"}, {"2", "NEUTRAL"}};
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_labels, 3);
  EXPECT_THAT(config->id2label, ElementsAre("NEGATIVE", "POSITIVE", "NEUTRAL"));

  j = BaseConfig();
  j["num_labels"] = 1;  // regression
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_labels, 1);
  EXPECT_THAT(config->id2label, ElementsAre("LABEL_0"));

  j["id2label"] = {{"0", "score"}};  // consistent with num_labels
  EXPECT_TRUE(Parse(j).ok());
}

TEST(ModelConfigTest, MissingRequiredFields) {
  for (const char* field : {"vocab_size", "hidden_size", "num_hidden_layers",
                            "num_attention_heads", "intermediate_size"}) {
    auto j = BaseConfig();
    j.erase(field);
    ExpectBadField(j, field, "missing");
  }
}

TEST(ModelConfigTest, WrongJsonTypes) {
  auto j = BaseConfig();
  j["hidden_size"] = "64";
  ExpectBadField(j, "hidden_size", "must be an integer");
  j = BaseConfig();
  j["num_hidden_layers"] = 2.5;
  ExpectBadField(j, "num_hidden_layers", "must be an integer");
  j = BaseConfig();
  j["vocab_size"] = nlohmann::json::array({100});
  ExpectBadField(j, "vocab_size", "must be an integer");
  j = BaseConfig();
  j["layer_norm_eps"] = "1e-12";
  ExpectBadField(j, "layer_norm_eps", "must be a number");
  j = BaseConfig();
  j["model_type"] = 7;
  ExpectBadField(j, "model_type", "must be a string");
  j = BaseConfig();
  j["model_type"] = "gpt2";
  ExpectBadField(j, "model_type", "unsupported");
}

TEST(ModelConfigTest, ZeroOrNegativeSizes) {
  auto j = BaseConfig();
  j["num_attention_heads"] = 0;
  ExpectBadField(j, "num_attention_heads", "at least 1");
  j = BaseConfig();
  j["hidden_size"] = -64;
  ExpectBadField(j, "hidden_size", "at least 1");
  j = BaseConfig();
  j["intermediate_size"] = 0;
  ExpectBadField(j, "intermediate_size");
  j = BaseConfig();
  j["type_vocab_size"] = 0;
  ExpectBadField(j, "type_vocab_size");
}

TEST(ModelConfigTest, HiddenNotDivisibleByHeads) {
  auto j = BaseConfig();
  j["num_attention_heads"] = 5;
  ExpectBadField(j, "num_attention_heads", "must divide hidden_size (64)");
}

TEST(ModelConfigTest, AbsurdSizesOverCaps) {
  auto j = BaseConfig();
  j["hidden_size"] = 1 << 20;
  ExpectBadField(j, "hidden_size", "limit");
  j = BaseConfig();
  j["num_hidden_layers"] = 100000;
  ExpectBadField(j, "num_hidden_layers", "limit");
  j = BaseConfig();
  j["vocab_size"] = 20000000;
  ExpectBadField(j, "vocab_size", "limit");
  j = BaseConfig();
  j["vocab_size"] = 18446744073709551615ULL;
  ExpectBadField(j, "vocab_size", "limit");
}

TEST(ModelConfigTest, BadLayerNormEps) {
  for (double eps : {-1e-5, 0.0, 2.0}) {
    auto j = BaseConfig();
    j["layer_norm_eps"] = eps;
    ExpectBadField(j, "layer_norm_eps");
  }
  // Not finite: JSON cannot spell inf, and nlohmann refuses a literal that
  // overflows to it, so the file is rejected as a whole.
  auto config = ParseEncoderConfig(
      R"({"vocab_size":100,"hidden_size":64,"num_hidden_layers":2,
          "num_attention_heads":4,"intermediate_size":128,
          "layer_norm_eps":1e999})",
      "test/config.json");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelConfigTest, PadTokenOutsideVocab) {
  auto j = BaseConfig();
  j["pad_token_id"] = 100;
  ExpectBadField(j, "pad_token_id", "outside the vocabulary");
  j["pad_token_id"] = -1;
  ExpectBadField(j, "pad_token_id");
}

TEST(ModelConfigTest, NotAnObjectOrNotJson) {
  for (const char* text : {"[1, 2]", "\"bert\"", "42"}) {
    auto config = ParseEncoderConfig(text, "test/config.json");
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()),
                HasSubstr("must be a JSON object"));
  }
  for (const char* text : {"", "{", "{\"hidden_size\": }", "{'a': 1}"}) {
    auto config = ParseEncoderConfig(text, "test/config.json");
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()),
                HasSubstr("not valid JSON"));
    EXPECT_THAT(std::string(config.status().message()),
                HasSubstr("test/config.json"));
  }
}

TEST(ModelConfigTest, BadId2Label) {
  const nlohmann::json bad[] = {
      nlohmann::json::array({"a", "b"}),  // not an object
      nlohmann::json::object(),           // empty
      {{"0", "a"}, {"2", "b"}},           // gap
      {{"0", "a"}, {"x", "b"}},           // not an int
      {{"0", "a"}, {"-1", "b"}},          // negative
      {{"0", "a"}, {"01", "b"}},          // not canonical
      {{"0", "a"}, {"1", 5}},             // value not a string
  };
  for (const auto& id2label : bad) {
    auto j = BaseConfig();
    j["id2label"] = id2label;
    ExpectBadField(j, "id2label");
  }
  auto j = BaseConfig();
  j["id2label"] = {{"0", "a"}, {"1", "b"}};
  j["num_labels"] = 3;
  ExpectBadField(j, "num_labels", "id2label has 2");
  j = BaseConfig();
  j["num_labels"] = 0;
  ExpectBadField(j, "num_labels");
}

TEST(ModelConfigTest, LoadMissingFile) {
  auto config = LoadEncoderConfig("/nonexistent/dir/config.json");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  testing::ScopedTempDir dir;  // a directory without config.json
  EXPECT_EQ(LoadEncoderConfig(dir.path()).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dylora
