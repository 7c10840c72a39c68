#include "core/tokenizer/unicode.h"

#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::u32string U(absl::string_view utf8) { return *unicode::DecodeUtf8(utf8); }

std::vector<std::string> Utf8(const std::vector<std::u32string>& pieces) {
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(unicode::EncodeUtf8(p));
  return out;
}

TEST(UnicodeTest, DecodesAndEncodesRoundTrip) {
  const std::string text = "aé中😀";
  absl::StatusOr<std::u32string> decoded = unicode::DecodeUtf8(text);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, (std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(unicode::EncodeUtf8(*decoded), text);
}

TEST(UnicodeTest, RejectsInvalidUtf8WithOffset) {
  for (const std::string& bad :
       {std::string("ab\xff"), std::string("\xc3"), std::string("\xc0\xaf"),
        std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"),
        std::string("a\xe4\xb8")}) {
    absl::StatusOr<std::u32string> decoded = unicode::DecodeUtf8(bad);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("offset"));
  }
}

TEST(UnicodeTest, CharacterClasses) {
  EXPECT_TRUE(unicode::IsWhitespace(0x3000));
  EXPECT_TRUE(unicode::IsWhitespace(0x85));
  EXPECT_FALSE(unicode::IsWhitespace(0x200B));
  EXPECT_TRUE(unicode::IsBertControl(0x200B));  // Cf
  EXPECT_FALSE(unicode::IsBertControl('\n'));
  EXPECT_TRUE(unicode::IsBertPunctuation('$'));      // ASCII, though Sc
  EXPECT_TRUE(unicode::IsBertPunctuation(0x201C));   // Pi
  EXPECT_FALSE(unicode::IsBertPunctuation(0x20AC));  // euro sign, Sc
  EXPECT_TRUE(unicode::IsChineseChar(0x4E2D));
  EXPECT_FALSE(unicode::IsChineseChar(0x2B820));
  EXPECT_TRUE(unicode::IsChineseChar(0x2B920));
  EXPECT_TRUE(unicode::IsMarkNonspacing(0x301));
}

TEST(NormalizerTest, BertNormalizerCleansSplitsCjkStripsAndLowercases) {
  auto normalizer = MakeBertNormalizer(BertNormalizerOptions{});
  EXPECT_EQ(unicode::EncodeUtf8(normalizer->Normalize(
                U("Ça\tVA\u200b\xef\xbf\xbd\x01 中文 İ"))),
            "ca va  中  文  i");
  BertNormalizerOptions cased;
  cased.lowercase = false;
  EXPECT_EQ(unicode::EncodeUtf8(MakeBertNormalizer(cased)->Normalize(U("Ça"))),
            "Ça");
  BertNormalizerOptions keep_accents;
  keep_accents.strip_accents = false;
  EXPECT_EQ(
      unicode::EncodeUtf8(MakeBertNormalizer(keep_accents)->Normalize(U("Çİ"))),
      "çi\xcc\x87");
}

TEST(NormalizerTest, FromJsonRejectsUnknownTypes) {
  auto n = NormalizerFromJson(nlohmann::json{{"type", "Precompiled"}});
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("Precompiled"));
  auto bad = NormalizerFromJson(
      nlohmann::json{{"type", "BertNormalizer"}, {"lowercase", "yes"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("lowercase"));
}

TEST(PreTokenizerTest, BertSplitsWhitespaceAndPunctuation) {
  std::vector<std::u32string> pieces = {U("Hello,  world!! it's 3.14")};
  MakeBertPreTokenizer()->PreTokenize(pieces);
  EXPECT_THAT(Utf8(pieces), ElementsAre("Hello", ",", "world", "!", "!", "it",
                                        "'", "s", "3", ".", "14"));
}

TEST(ByteLevelTest, Gpt2SplitFollowsTheRegex) {
  EXPECT_THAT(
      Utf8(byte_level::SplitGpt2(U("Hello world's  3 apples!!  \n"))),
      ElementsAre("Hello", " world", "'s", " ", " 3", " apples", "!!", "  \n"));
  EXPECT_THAT(
      Utf8(byte_level::SplitGpt2(U("a   b\n\nc 'LL 're"))),
      ElementsAre("a", "  ", " b", "\n", "\n", "c", " '", "LL", " '", "re"));
}

TEST(ByteLevelTest, ByteMapIsGpt2s) {
  EXPECT_EQ(byte_level::ByteToChar(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(byte_level::ByteToChar('A'), U'A');
  EXPECT_EQ(byte_level::ByteToChar('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_level::ByteToChar(0xAD), 0x143u);
  std::vector<std::u32string> pieces = {U("hi é")};
  MakeByteLevelPreTokenizer(/*add_prefix_space=*/true)->PreTokenize(pieces);
  EXPECT_THAT(Utf8(pieces), ElementsAre("Ġhi", "ĠÃ©"));
}

}  // namespace
}  // namespace dylora
