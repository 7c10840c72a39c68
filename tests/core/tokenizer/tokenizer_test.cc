#include "core/tokenizer/tokenizer.h"

#include <fstream>
#include <thread>

#include "core/tokenizer/encoding.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A tiny WordPiece tokenizer.json to corrupt in the tests below.
json TinyBert() {
  return json::parse(R"({
    "added_tokens": [
      {"id": 0, "content": "[PAD]", "special": true, "normalized": false},
      {"id": 1, "content": "[UNK]", "special": true, "normalized": false},
      {"id": 2, "content": "[CLS]", "special": true, "normalized": false},
      {"id": 3, "content": "[SEP]", "special": true, "normalized": false}],
    "normalizer": {"type": "BertNormalizer", "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "cls": ["[CLS]", 2],
                       "sep": ["[SEP]", 3]},
    "model": {"type": "WordPiece", "unk_token": "[UNK]",
              "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100,
              "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
                        "un": 4, "##aff": 5, "##able": 6, "a": 7, "b": 8,
                        "!": 9}}})");
}

absl::Status LoadStatus(const json& j) {
  return Tokenizer::FromTokenizerJson(j.dump(), "tiny.json").status();
}

void ExpectInvalid(const json& j, const std::string& message_part) {
  absl::Status status = LoadStatus(j);
  EXPECT_FALSE(status.ok()) << j.dump();
  EXPECT_THAT(std::string(status.message()), HasSubstr(message_part));
}

TEST(TokenizerTest, TinyWordPieceEncodes) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJson(TinyBert().dump(), "tiny.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  absl::StatusOr<Encoding> e = tok->EncodePair("UnAffable!", "a xyz [SEP]");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_THAT(e->ids, ElementsAre(2, 4, 5, 6, 9, 3, 7, 1, 3, 3));
  EXPECT_THAT(e->type_ids, ElementsAre(0, 0, 0, 0, 0, 0, 1, 1, 1, 1));
  EXPECT_THAT(e->tokens, ElementsAre("[CLS]", "un", "##aff", "##able", "!",
                                     "[SEP]", "a", "[UNK]", "[SEP]", "[SEP]"));
  absl::StatusOr<Encoding> plain = tok->Encode("a b", false);
  ASSERT_TRUE(plain.ok());
  EXPECT_THAT(plain->ids, ElementsAre(7, 8));
}

TEST(TokenizerTest, RejectsBadFiles) {
  EXPECT_EQ(Tokenizer::FromTokenizerJson("{not json", "x.json").status().code(),
            absl::StatusCode::kInvalidArgument);
  json j = TinyBert();
  j.erase("model");
  ExpectInvalid(j, "model");

  j = TinyBert();
  j["model"]["type"] = "Unigram";
  ExpectInvalid(j, "Unigram");

  j = TinyBert();
  j["model"]["vocab"]["b"] = 7;  // duplicate id
  ExpectInvalid(j, "duplicate id 7");

  j = TinyBert();
  j["model"]["vocab"]["b"] = 42;  // hole
  ExpectInvalid(j, "not contiguous");

  j = TinyBert();
  j["model"]["unk_token"] = "<unk>";
  ExpectInvalid(j, "<unk>");

  j = TinyBert();
  j["post_processor"]["sep"] = json::array({"[SEP]", 9});
  ExpectInvalid(j, "[SEP]");

  j = TinyBert();
  j["added_tokens"][1]["id"] = 5;
  ExpectInvalid(j, "[UNK]");

  j = TinyBert();
  j["model"]["vocab"]["a"] = "seven";
  ExpectInvalid(j, "\"a\"");

  j = TinyBert();
  j["truncation"] = json{{"max_length", -3}};
  ExpectInvalid(j, "max_length");
}

TEST(TokenizerTest, RejectsBpeMergesOfUnknownTokens) {
  json j = {{"model",
             {{"type", "BPE"},
              {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}},
              {"merges", json::array({"a b", "a c"})}}}};
  ExpectInvalid(j, "\"c\"");
  j["model"]["merges"] = json::array({json::array({"b", "a"})});
  ExpectInvalid(j, "\"ba\"");
  j["model"]["merges"] = json::array({"a b", "ab"});
  ExpectInvalid(j, "merge 2");
  j["model"]["merges"] = json::array({json::array({"a", "b"})});
  EXPECT_TRUE(LoadStatus(j).ok());
}

TEST(TokenizerTest, MissingFilesAndSpecialTokens) {
  EXPECT_EQ(Tokenizer::FromTokenizerJsonFile("/nonexistent/tokenizer.json")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  testing::ScopedTempDir dir;
  const std::string vocab = dir.path() + "/vocab.txt";
  ASSERT_TRUE(WriteFileAtomically(vocab, "[PAD]\n[UNK]\n[CLS]\nhello\n").ok());
  absl::Status status = Tokenizer::FromBertVocabFile(vocab, true).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("[SEP]"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(vocab));
  ASSERT_TRUE(WriteFileAtomically(vocab, "a\nb\na\n").ok());
  status = Tokenizer::FromBertVocabFile(vocab, true).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("duplicate"));
}

TEST(TokenizerTest, InvalidUtf8InputIsInvalidArgument) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJson(TinyBert().dump(), "tiny.json");
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->Encode("ab\xc3").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tok->EncodePair("a", "\xff").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<std::string> batch = {"a", "b\x80"};
  absl::StatusOr<std::vector<Encoding>> rows = tok->EncodeBatch(batch);
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rows.status().message()), HasSubstr("row 1"));
}

TEST(TruncationTest, LongestFirstMatchesTokenizersRule) {
  auto make = [](size_t n) {
    Encoding e;
    e.ids.assign(n, 1);
    e.type_ids.assign(n, 0);
    e.attention_mask.assign(n, 1);
    e.special_tokens_mask.assign(n, 0);
    e.tokens.assign(n, "x");
    return e;
  };
  TruncationParams params;
  struct Case {
    size_t a, b, max, want_a, want_b;
  } cases[] = {{10, 10, 7, 3, 4}, {10, 9, 7, 4, 3}, {20, 2, 7, 5, 2},
               {2, 20, 7, 2, 5},  {3, 3, 10, 3, 3}, {9, 10, 7, 3, 4}};
  for (const Case& c : cases) {
    Encoding a = make(c.a), b = make(c.b);
    ASSERT_TRUE(TruncateEncodings(a, &b, c.max, params).ok());
    EXPECT_EQ(a.size(), c.want_a) << c.a << "," << c.b;
    EXPECT_EQ(b.size(), c.want_b) << c.a << "," << c.b;
  }
  params.strategy = TruncationParams::Strategy::kOnlySecond;
  Encoding a = make(10), b = make(2);
  EXPECT_EQ(TruncateEncodings(a, &b, 7, params).code(),
            absl::StatusCode::kInvalidArgument);
  params.direction = Direction::kLeft;
  params.strategy = TruncationParams::Strategy::kLongestFirst;
  Encoding s = make(5);
  s.ids = {1, 2, 3, 4, 5};
  ASSERT_TRUE(TruncateEncodings(s, nullptr, 2, params).ok());
  EXPECT_THAT(s.ids, ElementsAre(4, 5));
}

TEST(TokenizerTest, TruncationSmallerThanSpecialTokensFails) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJson(TinyBert().dump(), "tiny.json");
  ASSERT_TRUE(tok.ok());
  TruncationParams t;
  t.max_length = 2;
  tok->set_truncation(t);
  EXPECT_EQ(tok->EncodePair("a", "b").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, RectangularBatchPadsRaggedRows) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJson(TinyBert().dump(), "tiny.json");
  ASSERT_TRUE(tok.ok());
  std::vector<std::string> first = {"a", "a b a"};
  std::vector<std::string> second = {"b", "b"};
  absl::StatusOr<BatchEncoding> batch =
      tok->EncodeBatchRectangular(first, second);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->batch_size, 2);
  EXPECT_EQ(batch->seq_len, 7);
  EXPECT_THAT(batch->input_ids,
              ElementsAre(2, 7, 3, 8, 3, 0, 0, 2, 7, 8, 7, 3, 8, 3));
  EXPECT_THAT(batch->token_type_ids,
              ElementsAre(0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1));
  EXPECT_THAT(batch->attention_mask,
              ElementsAre(1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1));
  std::vector<std::string> wrong = {"b"};
  EXPECT_EQ(tok->EncodeBatch(first, wrong).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, ConcurrentEncodesAgree) {
  absl::StatusOr<Tokenizer> tok =
      Tokenizer::FromTokenizerJsonFile(testing::ModelDir() + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string text =
      "The quick brown fox jumps over the lazy dog, naïvely! 中文 😀";
  absl::StatusOr<Encoding> want = tok->Encode(text);
  ASSERT_TRUE(want.ok());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<Encoding> got = tok->Encode(text);
        if (!got.ok() || got->ids != want->ids) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

}  // namespace
}  // namespace dylora
