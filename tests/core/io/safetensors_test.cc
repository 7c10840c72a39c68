#include "core/io/safetensors.h"

#include <cstring>
#include <filesystem>
#include <random>

#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Builds a safetensors byte string from a raw header text and data bytes.
std::string MakeFile(const std::string& header, const std::string& data = "") {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out + header + data;
}

std::string LengthPrefix(uint64_t n) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out;
}

// Expects FromBytes to fail with INVALID_ARGUMENT and a message containing
// every one of `parts` (and the origin).
void ExpectInvalid(const std::string& bytes,
                   std::initializer_list<const char*> parts) {
  auto file = SafetensorsFile::FromBytes(bytes, "test.safetensors");
  ASSERT_FALSE(file.ok()) << "accepted a bad file";
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument)
      << file.status();
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr("test.safetensors"));
  for (const char* part : parts) EXPECT_THAT(message, HasSubstr(part));
}

std::string Entry(const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

// ---- valid files ----------------------------------------------------------

TEST(SafetensorsTest, EmptyHeaderIsAValidEmptyFile) {
  auto file = SafetensorsFile::FromBytes(MakeFile("{}"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_TRUE((*file)->metadata().empty());
  EXPECT_EQ((*file)->Find("x"), nullptr);
}

TEST(SafetensorsTest, ParsesHandWrittenFileAndSortsByOffset) {
  // Header lists "b" first but its data comes second.
  const std::string header = "{\"b\":" + Entry("U8", "[2]", "[4,6]") +
                             ",\"a\":" + Entry("I16", "[2]", "[0,4]") +
                             ",\"__metadata__\":{\"k\":\"v\"}}";
  std::string data = {1, 0, 2, 0, 7, 9};
  auto file = SafetensorsFile::FromBytes(MakeFile(header, data), "hand");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].name, "a");
  EXPECT_EQ(tensors[1].name, "b");
  EXPECT_EQ(tensors[0].dtype, DType::kI16);
  EXPECT_THAT(tensors[1].shape, ElementsAre(2));
  const TensorInfo* b = (*file)->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_THAT((*file)->Data(*b), ElementsAre(7, 9));
  EXPECT_EQ((*file)->metadata().at("k"), "v");
  EXPECT_EQ((*file)->origin(), "hand");
}

TEST(SafetensorsTest, HeaderPaddedWithSpacesIsAccepted) {
  auto file = SafetensorsFile::FromBytes(
      MakeFile("{\"a\":" + Entry("U8", "[1]", "[0,1]") + "}     ", "x"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 1u);
}

TEST(SafetensorsTest, ZeroSizedTensorsShareOffsets) {
  const std::string header = "{\"e1\":" + Entry("F32", "[0,3]", "[0,0]") +
                             ",\"x\":" + Entry("U8", "[1]", "[0,1]") +
                             ",\"e2\":" + Entry("F64", "[2,0]", "[1,1]") + "}";
  auto file = SafetensorsFile::FromBytes(MakeFile(header, "z"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Find("e1")->numel(), 0);
  EXPECT_TRUE((*file)->Data(*(*file)->Find("e2")).empty());
}

TEST(SafetensorsTest, ScalarHasEmptyShapeAndOneElement) {
  auto file = SafetensorsFile::FromBytes(
      MakeFile("{\"s\":" + Entry("I32", "[]", "[0,4]") + "}", "abcd"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Find("s")->numel(), 1);
}

TEST(SafetensorsTest, DTypeNamesAndSizes) {
  const std::pair<const char*, size_t> expected[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"I16", 2}, {"I32", 4},
      {"I64", 8},  {"F16", 2}, {"BF16", 2}, {"F32", 4}, {"F64", 8}};
  for (const auto& [name, size] : expected) {
    auto dtype = ParseDType(name);
    ASSERT_TRUE(dtype.ok()) << name;
    EXPECT_EQ(DTypeName(*dtype), name);
    EXPECT_EQ(DTypeSize(*dtype), size) << name;
  }
  EXPECT_EQ(ParseDType("f32").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, RoundTripsEveryDTypeThroughSerializer) {
  const DType all[] = {DType::kBool, DType::kU8,  DType::kI8,  DType::kI16,
                       DType::kI32,  DType::kI64, DType::kF16, DType::kBF16,
                       DType::kF32,  DType::kF64};
  std::vector<std::string> buffers;
  for (DType dtype : all) {
    std::string bytes(DTypeSize(dtype) * 6, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<char>((i * 37 + DTypeSize(dtype)) & 0x7F);
    }
    if (dtype == DType::kBool) {
      for (auto& c : bytes) c = static_cast<char>(c & 1);
    }
    buffers.push_back(bytes);
  }
  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < std::size(all); ++i) {
    tensors.push_back({std::string(DTypeName(all[i])) + ".t",
                       all[i],
                       {2, 3},
                       absl::Span<const uint8_t>(
                           reinterpret_cast<const uint8_t*>(buffers[i].data()),
                           buffers[i].size())});
  }
  auto bytes = SerializeSafetensors(tensors, {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Data section starts 8-aligned.
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes->data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);

  auto file = SafetensorsFile::FromBytes(*bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), std::size(all));
  for (size_t i = 0; i < std::size(all); ++i) {
    // Laid out in the given order.
    const TensorInfo& info = (*file)->tensors()[i];
    EXPECT_EQ(info.name, tensors[i].name);
    EXPECT_EQ(info.dtype, all[i]);
    EXPECT_THAT(info.shape, ElementsAre(2, 3));
    const auto data = (*file)->Data(info);
    EXPECT_EQ(
        std::string(reinterpret_cast<const char*>(data.data()), data.size()),
        buffers[i]);
  }
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
}

TEST(SafetensorsTest, WriteThenOpenFromDiskAndNoTemporaryLeft) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/w.safetensors";
  const uint8_t data[] = {1, 2, 3, 4};
  ASSERT_TRUE(WriteSafetensors(path, {{"w", DType::kU8, {4}, data}}, {}).ok());
  ASSERT_TRUE(
      WriteSafetensors(path, {{"w", DType::kI8, {2, 2}, data}}, {}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->Find("w")->dtype, DType::kI8);
  EXPECT_THAT((*file)->Data(*(*file)->Find("w")), ElementsAre(1, 2, 3, 4));
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename(), "w.safetensors");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(SafetensorsTest, ReadsFileWrittenByPythonSafetensors) {
  auto file = SafetensorsFile::Open(testing::FixturesDir() +
                                    "/io/python_written.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 13u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->metadata().at("unicode"), "h\xc3\xa9llo \xe2\x9c\x93");
  const TensorInfo* bf16 = (*file)->Find("bf16");
  ASSERT_NE(bf16, nullptr);
  EXPECT_EQ(bf16->dtype, DType::kBF16);
  EXPECT_THAT(bf16->shape, ElementsAre(2, 2));
  // Value-by-value checks are in torch_tensors_test.
}

TEST(SafetensorsTest, OpensRealMiniLM) {
  auto file = SafetensorsFile::Open(testing::ModelDir() + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 104u);
  const TensorInfo* q =
      (*file)->Find("encoder.layer.0.attention.self.query.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kF32);
  EXPECT_THAT(q->shape, ElementsAre(384, 384));
  const TensorInfo* emb = (*file)->Find("embeddings.word_embeddings.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_THAT(emb->shape, ElementsAre(30522, 384));
  EXPECT_EQ((*file)->Data(*emb).size(), 30522u * 384u * 4u);
}

// ---- bad inputs -------------------------------------------------------------

TEST(SafetensorsBadInputTest, FileShorterThanEightBytes) {
  ExpectInvalid("", {"0 bytes", "shorter than the 8-byte"});
  ExpectInvalid("abcde", {"5 bytes", "shorter than the 8-byte"});
}

TEST(SafetensorsBadInputTest, HeaderLengthLargerThanFile) {
  ExpectInvalid(LengthPrefix(50) + "{}", {"header length 50", "file size 10"});
}

TEST(SafetensorsBadInputTest, HeaderLengthOverTheFormatLimit) {
  ExpectInvalid(LengthPrefix(SafetensorsFile::kMaxHeaderBytes + 1) + "{}",
                {"header length 100000001", "limit"});
  ExpectInvalid(LengthPrefix(~uint64_t{0}) + "{}", {"header length", "limit"});
}

TEST(SafetensorsBadInputTest, HeaderNotValidUtf8) {
  ExpectInvalid(
      MakeFile("{\"a\xff\":" + Entry("U8", "[1]", "[0,1]") + "}", "x"),
      {"not valid UTF-8", "byte 3"});
  // Overlong encoding of '/', and a UTF-16 surrogate.
  ExpectInvalid(MakeFile("{\"\xc0\xaf\":{}}"), {"UTF-8"});
  ExpectInvalid(MakeFile("{\"\xed\xa0\x80\":{}}"), {"UTF-8"});
  // Truncated multi-byte sequence at the end.
  ExpectInvalid(MakeFile("{}\xe2\x9c"), {"UTF-8"});
}

TEST(SafetensorsBadInputTest, HeaderNotValidJson) {
  ExpectInvalid(MakeFile("{\"a\": "), {"not valid JSON"});
  ExpectInvalid(MakeFile("not json"), {"not valid JSON"});
}

TEST(SafetensorsBadInputTest, HeaderNotAnObject) {
  ExpectInvalid(MakeFile("[1,2]"), {"must be a JSON object", "array"});
  ExpectInvalid(MakeFile("\"s\""), {"must be a JSON object", "string"});
}

TEST(SafetensorsBadInputTest, EntryNotAnObject) {
  ExpectInvalid(MakeFile("{\"w\": [1]}"), {"tensor 'w'", "must be an object"});
}

TEST(SafetensorsBadInputTest, EntryWithUnexpectedField) {
  ExpectInvalid(MakeFile("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                         "\"data_offsets\":[0,1],\"extra\":1}}",
                         "x"),
                {"tensor 'w'", "unexpected field 'extra'"});
}

TEST(SafetensorsBadInputTest, EntryMissingFields) {
  ExpectInvalid(MakeFile("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", "x"),
                {"tensor 'w'", "missing field 'dtype'"});
  ExpectInvalid(
      MakeFile("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", "x"),
      {"tensor 'w'", "missing field 'shape'"});
  ExpectInvalid(MakeFile("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", "x"),
                {"tensor 'w'", "missing field 'data_offsets'"});
}

TEST(SafetensorsBadInputTest, UnknownOrMistypedDType) {
  ExpectInvalid(
      MakeFile("{\"w\":" + Entry("F8_E4M3", "[1]", "[0,1]") + "}", "x"),
      {"tensor 'w'", "unknown dtype 'F8_E4M3'"});
  ExpectInvalid(
      MakeFile("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}",
               "x"),
      {"tensor 'w'", "'dtype' must be a string"});
}

TEST(SafetensorsBadInputTest, ShapeNotAnArrayOfNonNegativeIntegers) {
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "3", "[0,3]") + "}", "xyz"),
                {"tensor 'w'", "'shape' must be an array"});
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "[-3]", "[0,3]") + "}", "xyz"),
                {"tensor 'w'", "'shape'[0] is negative"});
  ExpectInvalid(
      MakeFile("{\"w\":" + Entry("U8", "[1.5]", "[0,3]") + "}", "xyz"),
      {"tensor 'w'", "'shape'[0] must be a non-negative integer"});
  ExpectInvalid(
      MakeFile("{\"w\":" + Entry("U8", "[1,\"2\"]", "[0,3]") + "}", "xyz"),
      {"tensor 'w'", "'shape'[1] must be a non-negative integer", "string"});
}

TEST(SafetensorsBadInputTest, ShapeProductOverflows) {
  ExpectInvalid(
      MakeFile(
          "{\"w\":" + Entry("F32", "[4294967296,4294967296]", "[0,4]") + "}",
          "abcd"),
      {"tensor 'w'", "overflows"});
  ExpectInvalid(
      MakeFile("{\"w\":" + Entry("F64", "[4611686018427387904]", "[0,4]") + "}",
               "abcd"),
      {"tensor 'w'", "overflows"});
}

TEST(SafetensorsBadInputTest, DataOffsetsMalformed) {
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "[1]", "[0]") + "}", "x"),
                {"tensor 'w'", "'data_offsets' must be [begin, end]"});
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "[1]", "[0,1,2]") + "}", "x"),
                {"tensor 'w'", "'data_offsets' must be [begin, end]"});
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "[1]", "[-1,0]") + "}", "x"),
                {"tensor 'w'", "'data_offsets'[0] is negative"});
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "[1]", "{}") + "}", "x"),
                {"tensor 'w'", "'data_offsets' must be an array"});
}

TEST(SafetensorsBadInputTest, DataOffsetsBeginAfterEnd) {
  ExpectInvalid(MakeFile("{\"w\":" + Entry("U8", "[0]", "[1,0]") + "}", "x"),
                {"tensor 'w'", "begin 1 > end 0"});
}

TEST(SafetensorsBadInputTest, ShapeAndOffsetsDisagreeOnSize) {
  ExpectInvalid(
      MakeFile("{\"w\":" + Entry("F32", "[2]", "[0,4]") + "}", "abcd"),
      {"tensor 'w'", "size mismatch", "needs 8 bytes", "span 4"});
}

TEST(SafetensorsBadInputTest, MetadataNotAnObjectOfStrings) {
  ExpectInvalid(MakeFile("{\"__metadata__\":[1]}"),
                {"'__metadata__' must be an object"});
  ExpectInvalid(MakeFile("{\"__metadata__\":{\"epoch\":3}}"),
                {"'__metadata__' value for key 'epoch' must be a string"});
}

TEST(SafetensorsBadInputTest, DuplicateTensorNames) {
  const std::string header = "{\"w\":" + Entry("U8", "[1]", "[0,1]") +
                             ",\"w\":" + Entry("U8", "[1]", "[1,2]") + "}";
  ExpectInvalid(MakeFile(header, "xy"), {"duplicate tensor name 'w'"});
}

TEST(SafetensorsBadInputTest, DuplicateKeyInsideAnEntry) {
  ExpectInvalid(MakeFile("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"I8\","
                         "\"shape\":[1],\"data_offsets\":[0,1]}}",
                         "x"),
                {"'w': duplicate key 'dtype'"});
  ExpectInvalid(MakeFile("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"),
                {"'__metadata__': duplicate key 'k'"});
}

TEST(SafetensorsBadInputTest, GapBetweenTensors) {
  const std::string header = "{\"a\":" + Entry("U8", "[1]", "[0,1]") +
                             ",\"b\":" + Entry("U8", "[1]", "[2,3]") + "}";
  ExpectInvalid(MakeFile(header, "xyz"), {"tensor 'b'", "gap"});
  // A gap before the first tensor.
  ExpectInvalid(MakeFile("{\"a\":" + Entry("U8", "[1]", "[1,2]") + "}", "xy"),
                {"tensor 'a'", "gap"});
}

TEST(SafetensorsBadInputTest, OverlappingTensors) {
  const std::string header = "{\"a\":" + Entry("U8", "[2]", "[0,2]") +
                             ",\"b\":" + Entry("U8", "[2]", "[1,3]") + "}";
  ExpectInvalid(MakeFile(header, "xyz"), {"tensor 'b'", "overlap"});
  // Two tensors on the very same bytes.
  const std::string same = "{\"a\":" + Entry("U8", "[2]", "[0,2]") +
                           ",\"b\":" + Entry("U8", "[2]", "[0,2]") + "}";
  ExpectInvalid(MakeFile(same, "xy"), {"tensor 'b'", "overlap"});
}

TEST(SafetensorsBadInputTest, TrailingBytesNotIndexed) {
  ExpectInvalid(MakeFile("{\"a\":" + Entry("U8", "[1]", "[0,1]") + "}", "xy"),
                {"data section is 2 bytes", "only 1"});
  ExpectInvalid(MakeFile("{}", "junk"), {"data section is 4 bytes"});
}

TEST(SafetensorsBadInputTest, OffsetsPastTheEndOfTheFile) {
  ExpectInvalid(MakeFile("{\"a\":" + Entry("U8", "[8]", "[0,8]") + "}", "xy"),
                {"tensor 'a'", "end 8 is past the data section (2 bytes"});
}

TEST(SafetensorsBadInputTest, EmptyTensorName) {
  ExpectInvalid(MakeFile("{\"\":" + Entry("U8", "[1]", "[0,1]") + "}", "x"),
                {"empty name"});
}

TEST(SafetensorsBadInputTest, DeeplyNestedJsonRejected) {
  ExpectInvalid(MakeFile("{\"w\":{\"shape\":[[[[[1]]]]]}}"), {"nested"});
  ExpectInvalid(MakeFile(std::string(10000, '[') + std::string(10000, ']')),
                {"nested"});
}

TEST(SafetensorsBadInputTest, TruncatedCopyOfValidFile) {
  auto bytes = ReadFileToString(testing::FixturesDir() +
                                "/io/python_written.safetensors");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Cut inside the data section, inside the header, and inside the length.
  ExpectInvalid(bytes->substr(0, bytes->size() - 3), {"past the data section"});
  ExpectInvalid(bytes->substr(0, 100), {"exceeds the file size"});
  ExpectInvalid(bytes->substr(0, 6), {"shorter than the 8-byte"});
}

TEST(SafetensorsBadInputTest, TruncatedFileOnDisk) {
  testing::ScopedTempDir dir;
  auto bytes = ReadFileToString(testing::ModelDir() + "/model.safetensors");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::string path = dir.path() + "/cut.safetensors";
  ASSERT_TRUE(
      WriteFileAtomically(path, absl::string_view(*bytes).substr(0, 1 << 20))
          .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("past the data section"));
}

TEST(SafetensorsBadInputTest, MissingFileAndDirectory) {
  auto missing = SafetensorsFile::Open("/nonexistent/x.safetensors");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("/nonexistent/x.safetensors"));
  testing::ScopedTempDir dir;
  EXPECT_EQ(SafetensorsFile::Open(dir.path()).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string empty = dir.path() + "/empty.safetensors";
  ASSERT_TRUE(WriteFileAtomically(empty, "").ok());
  EXPECT_THAT(std::string(SafetensorsFile::Open(empty).status().message()),
              HasSubstr("0 bytes"));
}

// Deterministic mutations of a valid file: every result is either a valid
// file whose spans lie inside the buffer, or INVALID_ARGUMENT. Never a crash.
TEST(SafetensorsBadInputTest, MutatedFilesNeverCrash) {
  auto original = ReadFileToString(testing::FixturesDir() +
                                   "/io/python_written.safetensors");
  ASSERT_TRUE(original.ok()) << original.status();
  std::mt19937_64 rng(20240601);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = *original;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      // Mostly hit the header (where the structure is), sometimes anywhere.
      const size_t limit =
          rng() % 4 ? std::min<size_t>(bytes.size(), 904) : bytes.size();
      const size_t at = rng() % limit;
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes[at] = "0123456789[]{},:\"-"[rng() % 18];
          break;
        default:
          bytes.resize(at);
          break;
      }
      if (bytes.empty()) break;
    }
    auto file = SafetensorsFile::FromBytes(bytes, "mutated");
    if (!file.ok()) {
      EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument)
          << file.status();
      continue;
    }
    ++accepted;
    for (const TensorInfo& info : (*file)->tensors()) {
      const auto span = (*file)->Data(info);
      EXPECT_EQ(span.size(),
                static_cast<size_t>(info.numel()) * DTypeSize(info.dtype));
    }
  }
  // Flips inside tensor data keep the file valid.
  EXPECT_GT(accepted, 0);
}

// ---- writer validation
// --------------------------------------------------------

TEST(SafetensorsWriterTest, RejectsDuplicateNames) {
  const uint8_t data[] = {1};
  auto bytes = SerializeSafetensors(
      {{"w", DType::kU8, {1}, data}, {"w", DType::kU8, {1}, data}}, {});
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bytes.status().message()),
              HasSubstr("tensor 'w': duplicate name"));
}

TEST(SafetensorsWriterTest, RejectsSizeMismatch) {
  const uint8_t data[] = {1, 2, 3};
  auto bytes = SerializeSafetensors({{"w", DType::kF32, {1}, data}}, {});
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bytes.status().message()),
              HasSubstr("tensor 'w': size mismatch"));
}

TEST(SafetensorsWriterTest, RejectsBadNamesAndShapes) {
  const uint8_t data[] = {1};
  EXPECT_THAT(
      std::string(SerializeSafetensors({{"", DType::kU8, {1}, data}}, {})
                      .status()
                      .message()),
      HasSubstr("empty name"));
  EXPECT_THAT(std::string(SerializeSafetensors(
                              {{"__metadata__", DType::kU8, {1}, data}}, {})
                              .status()
                              .message()),
              HasSubstr("reserved"));
  EXPECT_THAT(
      std::string(SerializeSafetensors({{"\xff", DType::kU8, {1}, data}}, {})
                      .status()
                      .message()),
      HasSubstr("UTF-8"));
  EXPECT_THAT(
      std::string(SerializeSafetensors({{"n", DType::kU8, {-1}, data}}, {})
                      .status()
                      .message()),
      HasSubstr("negative"));
  EXPECT_THAT(
      std::string(SerializeSafetensors({}, {{"k", "\xc0"}}).status().message()),
      HasSubstr("UTF-8"));
}

TEST(SafetensorsWriterTest, FailedWriteNamesPathAndLeavesNothing) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/missing/dir/a.safetensors";
  absl::Status status = WriteSafetensors(path, {}, {});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriterTest, EmptyFileRoundTrips) {
  auto bytes = SerializeSafetensors({}, {});
  ASSERT_TRUE(bytes.ok());
  auto file = SafetensorsFile::FromBytes(*bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
}

}  // namespace
}  // namespace dylora
