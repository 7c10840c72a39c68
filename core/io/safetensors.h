// The safetensors format (https://github.com/huggingface/safetensors, format
// section): u64 little-endian header length N, N bytes of UTF-8 JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//    "__metadata__": {"<key>": "<string value>", ...}}
// then the raw little-endian row-major tensor bytes; offsets are relative to
// the end of the header.
//
// Every file is untrusted: Open() validates all of it before returning, and a
// violation is an absl::Status whose message names the file, the tensor and
// the problem. This file knows nothing about LibTorch (see torch_tensors.h).
//
// Status codes: a malformed file (bad length, header, entry, offsets; see
// Parse() in safetensors.cc for the full list) is INVALID_ARGUMENT; a
// missing file NOT_FOUND; other I/O failures INTERNAL/PERMISSION_DENIED.
// Only the 10 dtypes below are supported; others (F8_*, U16.., C64) are
// rejected as unknown.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dylora {

enum class DType { kBool, kU8, kI8, kI16, kI32, kI64, kF16, kBF16, kF32, kF64 };

// "F32" -> kF32 etc.; unknown names are INVALID_ARGUMENT.
absl::StatusOr<DType> ParseDType(absl::string_view name);
absl::string_view DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;
  int64_t numel() const;
};

// A validated, memory-mapped, read-only safetensors file. Thread-safe for
// concurrent reads after Open(). Data() spans stay valid for the object's life.
class SafetensorsFile {
 public:
  // The format caps the JSON header at 100 MB.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and validates `path`.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);
  // Validates an in-memory copy (tests, fuzzing, network payloads). `origin`
  // names the source in error messages.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBytes(
      std::string bytes, std::string origin = "<memory>");

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Tensors in data-offset order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* Find(absl::string_view name) const;
  // The tensor's raw bytes (little-endian, row-major). `info` must be one of
  // this file's tensors() (or from Find()); not checked here.
  absl::Span<const uint8_t> Data(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }
  const std::string& origin() const { return origin_; }

 private:
  SafetensorsFile() = default;
  absl::Status Parse();

  std::string origin_;
  // Either a mapping (mapped_ != nullptr) or an owned buffer.
  void* mapped_ = nullptr;
  size_t mapped_size_ = 0;
  std::string owned_;
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_start_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: `data` must hold exactly numel(shape) * DTypeSize bytes.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> data;
};

// Serializes tensors (in the given order) and metadata to safetensors bytes.
// Validates names (non-empty, unique, not "__metadata__", UTF-8) and sizes
// (INVALID_ARGUMENT naming the tensor). The header is padded with spaces so
// the data section starts 8-byte aligned; "__metadata__" is omitted when
// `metadata` is empty.
absl::StatusOr<std::string> SerializeSafetensors(
    const std::vector<TensorToWrite>& tensors,
    const std::map<std::string, std::string>& metadata);

// SerializeSafetensors + WriteFileAtomically (temp file + rename).
absl::Status WriteSafetensors(
    const std::string& path, const std::vector<TensorToWrite>& tensors,
    const std::map<std::string, std::string>& metadata);

}  // namespace dylora
