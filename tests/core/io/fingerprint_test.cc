#include "core/io/fingerprint.h"

#include <ATen/ATen.h>

#include <chrono>

#include "core/io/torch_tensors.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::MatchesRegex;

absl::StatusOr<std::string> FingerprintOf(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {}) {
  auto bytes = SerializeTensors(tensors, metadata);
  if (!bytes.ok()) return bytes.status();
  auto file = SafetensorsFile::FromBytes(*std::move(bytes));
  if (!file.ok()) return file.status();
  return FingerprintSafetensors(**file);
}

// The generator re-implements the definition in Python; both must agree.
TEST(FingerprintTest, MatchesIndependentPythonImplementation) {
  auto text =
      ReadFileToString(testing::FixturesDir() + "/io/python_written.json");
  ASSERT_TRUE(text.ok()) << text.status();
  const auto expected = nlohmann::json::parse(*text, nullptr, false);
  ASSERT_TRUE(expected.contains("fingerprint"));
  auto fp = FingerprintSafetensorsFile(testing::FixturesDir() +
                                       "/io/python_written.safetensors");
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(*fp, expected["fingerprint"].get<std::string>());
}

TEST(FingerprintTest, IsSixteenHexDigitsAndDeterministic) {
  const at::Tensor w = at::arange(100, at::kFloat).reshape({10, 10});
  auto a = FingerprintOf({{"w", w}});
  auto b = FingerprintOf({{"w", w.clone()}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_THAT(*a, MatchesRegex("[0-9a-f]{16}"));
  EXPECT_EQ(*a, *b);
}

TEST(FingerprintTest, IgnoresOrderMetadataAndHeaderLayout) {
  const at::Tensor w = at::arange(40, at::kFloat).reshape({5, 8});
  const at::Tensor b = at::ones({3}, at::kHalf);
  auto one = FingerprintOf({{"w", w}, {"b", b}});
  auto two = FingerprintOf({{"b", b}, {"w", w}}, {{"format", "pt"}});
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(*one, *two);
}

TEST(FingerprintTest, ChangesWithDataNamesShapesAndDTypes) {
  const at::Tensor w = at::arange(64, at::kFloat).reshape({8, 8});
  auto base = FingerprintOf({{"w", w}});
  ASSERT_TRUE(base.ok());
  at::Tensor changed = w.clone();
  changed[7][7] = 63.5f;  // last word: the tail and lane paths count
  at::Tensor first = w.clone();
  first[0][0] = 1e-30f;
  const std::vector<absl::StatusOr<std::string>> others = {
      FingerprintOf({{"w", changed}}),
      FingerprintOf({{"w", first}}),
      FingerprintOf({{"v", w}}),
      FingerprintOf({{"w", w.reshape({4, 16})}}),
      FingerprintOf({{"w", w.view(at::kInt)}}),  // same bytes, other dtype
      FingerprintOf({{"w", w}, {"x", at::empty({0})}}),
  };
  for (size_t i = 0; i < others.size(); ++i) {
    ASSERT_TRUE(others[i].ok());
    EXPECT_NE(*others[i], *base) << "variant " << i;
  }
  // Odd sizes exercise the byte-wise tail.
  auto odd = FingerprintOf({{"u", at::arange(37, at::kByte)}});
  at::Tensor odd2 = at::arange(37, at::kByte);
  odd2[36] = 0;
  auto odd_changed = FingerprintOf({{"u", odd2}});
  ASSERT_TRUE(odd.ok() && odd_changed.ok());
  EXPECT_NE(*odd, *odd_changed);
}

TEST(FingerprintTest, RealMiniLM) {
  auto file = SafetensorsFile::Open(testing::ModelDir() + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto start = std::chrono::steady_clock::now();
  auto fp = FingerprintSafetensors(**file);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_TRUE(fp.ok()) << fp.status();
  // Reported, not asserted (no timing assertions in tests).
  RecordProperty("fingerprint_seconds", std::to_string(seconds));
  std::printf("MiniLM fingerprint %s in %.3f s\n", fp->c_str(), seconds);
  auto again = FingerprintSafetensors(**file);
  EXPECT_EQ(*again, *fp);
}

}  // namespace
}  // namespace dylora
