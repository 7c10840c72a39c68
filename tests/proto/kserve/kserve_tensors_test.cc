// KServe v2 tensor codec: raw BYTES elements (4-byte little-endian length
// prefixes) from untrusted clients, and FP32 outputs as raw bytes.
#include "proto/kserve/kserve_tensors.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora::kserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// Four little-endian length bytes, written out by hand so the test does not
// trust the encoder it checks.
std::string Prefix(uint32_t length) {
  std::string prefix(4, '\0');
  for (int i = 0; i < 4; ++i)
    prefix[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return prefix;
}

TEST(KServeTensorsTest, EncodesTheDocumentedWireLayout) {
  EXPECT_EQ(EncodeRawBytesTensor({"ab", "", "xyz"}),
            Prefix(2) + "ab" + Prefix(0) + Prefix(3) + "xyz");
  EXPECT_EQ(EncodeRawBytesTensor({}), "");
  // Lengths above 255 use the higher bytes, little-endian.
  const std::string long_element(300, 'q');
  EXPECT_EQ(EncodeRawBytesTensor({long_element}).substr(0, 4),
            std::string("\x2c\x01\x00\x00", 4));
}

TEST(KServeTensorsTest, RawBytesRoundTripKeepsEmptyAndBinaryElements) {
  const std::vector<std::string> elements = {
      "a gripping film",
      "",
      std::string("\x00\xff\x01\x80 binary\x00", 12),
      std::string(70000, 'x'),  // length needs three prefix bytes
      "",
      "caf\xc3\xa9",
  };
  auto decoded = DecodeRawBytesTensor(EncodeRawBytesTensor(elements),
                                      elements.size(), "TEXT");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(*decoded, ElementsAreArray(elements));
}

TEST(KServeTensorsTest, DecodesHandWrittenBytesAndAnEmptyTensor) {
  auto decoded = DecodeRawBytesTensor(Prefix(3) + "one" + Prefix(0), 2, "TEXT");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(*decoded, ElementsAre("one", ""));

  auto empty = DecodeRawBytesTensor("", 0, "TEXT");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

TEST(KServeTensorsTest, MalformedRawBytesAreInvalidArgumentNamingTheTensor) {
  struct Case {
    std::string name;
    std::string raw;
    int64_t expected;
    std::string message;
  };
  const std::string two = Prefix(1) + "a" + Prefix(1) + "b";
  const std::vector<Case> cases = {
      {"truncated prefix", std::string("\x05\x00", 2), 1,
       "truncated length prefix"},
      {"truncated prefix after an element",
       Prefix(1) + "a" + std::string("\x01", 1), 2, "truncated length prefix"},
      {"length past end", Prefix(10) + "short", 1, "claims 10 bytes"},
      {"huge length", Prefix(0xffffffffu) + "x", 1, "claims"},
      {"too many elements", two, 1, "more than the 1"},
      {"too few elements", two, 3, "declares 3 elements"},
      {"elements for an empty shape", Prefix(0), 0, "more than the 0"},
      {"nothing for one element", "", 1, "declares 1 elements"},
  };
  for (const Case& c : cases) {
    auto decoded = DecodeRawBytesTensor(c.raw, c.expected, "TEXT_PAIR");
    ASSERT_FALSE(decoded.ok()) << c.name;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << c.name;
    EXPECT_THAT(decoded.status().message(), HasSubstr("TEXT_PAIR")) << c.name;
    EXPECT_THAT(decoded.status().message(), HasSubstr(c.message))
        << c.name << ": " << decoded.status();
  }
}

TEST(KServeTensorsTest, Fp32IsLittleEndianIeeeAndRoundTripsExactly) {
  const float one = 1.0f;  // 0x3f800000
  EXPECT_EQ(EncodeRawFp32(&one, 1), std::string("\x00\x00\x80\x3f", 4));

  const std::vector<float> values = {0.0f,
                                     -0.0f,
                                     1.5f,
                                     -3.25e-7f,
                                     123456.789f,
                                     std::numeric_limits<float>::max(),
                                     std::numeric_limits<float>::denorm_min(),
                                     std::numeric_limits<float>::infinity()};
  const std::string raw = EncodeRawFp32(values.data(), values.size());
  ASSERT_EQ(raw.size(), values.size() * 4);
  const std::vector<float> decoded = DecodeRawFp32(raw);
  ASSERT_EQ(decoded.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(decoded[i], values[i]) << "element " << i;
    EXPECT_EQ(std::signbit(decoded[i]), std::signbit(values[i]))
        << "element " << i;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(DecodeRawFp32(EncodeRawFp32(&nan, 1))[0]));
  EXPECT_TRUE(DecodeRawFp32("").empty());
  EXPECT_TRUE(EncodeRawFp32(nullptr, 0).empty());
}

}  // namespace
}  // namespace dylora::kserve
