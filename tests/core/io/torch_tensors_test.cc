#include "core/io/torch_tensors.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>

#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

nlohmann::json LoadExpected() {
  auto text =
      ReadFileToString(testing::FixturesDir() + "/io/python_written.json");
  if (!text.ok()) return nlohmann::json();
  return nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
}

std::string FixturePath() {
  return testing::FixturesDir() + "/io/python_written.safetensors";
}

TEST(TorchTensorsTest, ScalarTypeMappingIsOneToOne) {
  const DType all[] = {DType::kBool, DType::kU8,  DType::kI8,  DType::kI16,
                       DType::kI32,  DType::kI64, DType::kF16, DType::kBF16,
                       DType::kF32,  DType::kF64};
  for (DType dtype : all) {
    auto back = FromScalarType(ToScalarType(dtype));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, dtype);
    EXPECT_EQ(c10::elementSize(ToScalarType(dtype)), DTypeSize(dtype));
  }
  EXPECT_EQ(FromScalarType(at::kComplexFloat).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Every value of the file written by Python's safetensors, against the JSON
// the generator wrote next to it.
TEST(TorchTensorsTest, PythonWrittenFixtureMatchesValueByValue) {
  const nlohmann::json expected = LoadExpected();
  ASSERT_TRUE(expected.is_object());
  auto tensors = LoadTensors(FixturePath());
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), expected["tensors"].size());
  int checked = 0;
  for (const auto& [name, want] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(tensors->count(name));
    const at::Tensor& t = tensors->at(name);
    auto dtype = ParseDType(want["dtype"].get<std::string>());
    ASSERT_TRUE(dtype.ok());
    EXPECT_EQ(t.scalar_type(), ToScalarType(*dtype));
    EXPECT_EQ(t.device().type(), c10::DeviceType::CPU);
    EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
    const auto& values = want["values"];
    ASSERT_EQ(t.numel(), static_cast<int64_t>(values.size()));
    const at::Tensor flat = t.reshape({-1});
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (*dtype == DType::kBool) {
        EXPECT_EQ(flat[i].item<bool>(), values[i].get<bool>()) << i;
      } else if (values[i].is_number_integer()) {
        EXPECT_EQ(flat[i].item<int64_t>(), values[i].get<int64_t>()) << i;
      } else {
        // Floats are exact: the JSON holds each stored value widened to
        // double.
        EXPECT_EQ(flat[i].item<double>(), values[i].get<double>()) << i;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(TorchTensorsTest, ToFloat32ConvertsHalfAndBFloat16) {
  auto file = SafetensorsFile::Open(FixturePath());
  ASSERT_TRUE(file.ok()) << file.status();
  for (const char* name : {"bf16", "f16", "i8", "f32"}) {
    auto t = ToFloat32Tensor(**file, *(*file)->Find(name));
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->scalar_type(), at::kFloat);
  }
  auto bf16 = ToFloat32Tensor(**file, *(*file)->Find("bf16"));
  EXPECT_FLOAT_EQ(bf16->reshape({-1})[1].item<float>(), -3.140625f);
}

TEST(TorchTensorsTest, ToTensorRejectsInfoFromAnotherFile) {
  auto file = SafetensorsFile::Open(FixturePath());
  ASSERT_TRUE(file.ok()) << file.status();
  TensorInfo forged = *(*file)->Find("f32");
  forged.end += 4;
  auto t = ToTensor(**file, forged);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("tensor 'f32' does not belong"));
}

TEST(TorchTensorsTest, RoundTripsEveryDType) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/all.safetensors";
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  const at::Tensor base =
      at::arange(-12, 12, at::kDouble).reshape({2, 3, 4}) * 1.7;
  for (at::ScalarType type :
       {at::kBool, at::kByte, at::kChar, at::kShort, at::kInt, at::kLong,
        at::kHalf, at::kBFloat16, at::kFloat, at::kDouble}) {
    at::Tensor t = type == at::kByte ? base.abs().to(type) : base.to(type);
    tensors.emplace_back(std::string("t_") + c10::toString(type), t);
  }
  tensors.emplace_back("scalar", at::scalar_tensor(2.5, at::kFloat));
  tensors.emplace_back("empty", at::empty({0, 5}, at::kLong));
  ASSERT_TRUE(SaveTensors(path, tensors, {{"format", "pt"}}).ok());

  auto loaded = LoadTensors(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const at::Tensor& got = loaded->at(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type());
    EXPECT_EQ(got.sizes(), t.sizes());
    EXPECT_TRUE(at::equal(got, t));
  }
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  // Written in the given order.
  EXPECT_EQ((*file)->tensors().front().name, tensors.front().first);
}

TEST(TorchTensorsTest, SavesNonContiguousAndGradTensors) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/nc.safetensors";
  const at::Tensor m = at::arange(12, at::kFloat).reshape({3, 4});
  const at::Tensor transposed = m.t();            // strides (1, 4)
  const at::Tensor sliced = m.slice(1, 1, 4, 2);  // every other column
  const at::Tensor expanded = at::ones({1, 3}).expand({4, 3});  // stride 0
  const at::Tensor grad = at::ones({2}).set_requires_grad(true);
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_TRUE(
      SaveTensors(
          path,
          {{"t", transposed}, {"s", sliced}, {"e", expanded}, {"g", grad}})
          .ok());
  auto loaded = LoadTensors(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(at::equal(loaded->at("t"), transposed));
  EXPECT_TRUE(at::equal(loaded->at("s"), sliced));
  EXPECT_TRUE(at::equal(loaded->at("e"), expanded));
  EXPECT_TRUE(at::equal(loaded->at("g"), grad.detach()));
}

TEST(TorchTensorsTest, SaveRejectsUnsupportedAndUndefinedTensors) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/bad.safetensors";
  absl::Status complex =
      SaveTensors(path, {{"c", at::zeros({2}, at::kComplexFloat)}});
  EXPECT_EQ(complex.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(complex.message()), HasSubstr("tensor 'c'"));
  EXPECT_THAT(std::string(complex.message()), HasSubstr("ComplexFloat"));

  absl::Status undefined = SaveTensors(path, {{"u", at::Tensor()}});
  EXPECT_EQ(undefined.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(undefined.message()),
              HasSubstr("tensor 'u': undefined"));

  absl::Status dup =
      SaveTensors(path, {{"d", at::zeros({1})}, {"d", at::zeros({1})}});
  EXPECT_THAT(std::string(dup.message()), HasSubstr("duplicate"));
  // Nothing was written.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(TorchTensorsTest, WorksUnderInferenceMode) {
  c10::InferenceMode guard;
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/inf.safetensors";
  const at::Tensor t = at::randn({3, 2}).t();
  ASSERT_TRUE(SaveTensors(path, {{"w", t}}).ok());
  auto loaded = LoadTensors(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(at::equal(loaded->at("w"), t));
}

TEST(TorchTensorsTest, LoadPropagatesValidationErrors) {
  auto loaded = LoadTensors("/nonexistent/file.safetensors");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
}

TEST(TorchTensorsTest, RealMiniLMMatchesPythonReader) {
  const nlohmann::json expected = LoadExpected();
  ASSERT_TRUE(expected.contains("minilm"))
      << "regenerate the fixture with the model present";
  const nlohmann::json& ref = expected["minilm"];
  auto file = SafetensorsFile::Open(testing::ModelDir() + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), ref["num_tensors"].get<size_t>());
  int checked = 0;
  for (const auto& [name, want] : ref.items()) {
    if (!want.is_object()) continue;
    SCOPED_TRACE(name);
    const TensorInfo* info = (*file)->Find(name);
    ASSERT_NE(info, nullptr);
    auto t = ToTensor(**file, *info);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->sizes().vec(), want["shape"].get<std::vector<int64_t>>());
    const at::Tensor flat = t->reshape({-1});
    for (size_t i = 0; i < want["first"].size(); ++i) {
      EXPECT_EQ(flat[i].item<float>(),
                static_cast<float>(want["first"][i].get<double>()));
    }
    EXPECT_EQ(flat[-1].item<float>(),
              static_cast<float>(want["last"].get<double>()));
    EXPECT_NEAR(flat.to(at::kDouble).sum().item<double>(),
                want["sum"].get<double>(), 1e-9);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
}  // namespace dylora
