#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/utf8.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace dylora {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kMetadataKey = "__metadata__";
// A valid header nests at most three deep: {name: {"shape": [..]}}.
constexpr int kMaxJsonDepth = 3;

struct DTypeEntry {
  DType dtype;
  absl::string_view name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},     {DType::kI16, "I16", 2},
    {DType::kI32, "I32", 4},   {DType::kI64, "I64", 8},
    {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2},
    {DType::kF32, "F32", 4},   {DType::kF64, "F64", 8},
};

const char* JsonTypeName(const Json& value) { return value.type_name(); }

// Multiplies the dims of `shape` into an element count that fits int64 and
// whose byte size (x elem_size) fits uint64. Empty on overflow or bad dims.
absl::Status ShapeBytes(const std::vector<int64_t>& shape, size_t elem_size,
                        uint64_t* bytes) {
  uint64_t numel = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return absl::InvalidArgumentError("negative dimension");
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          "shape's element count overflows 64 bits");
    }
  }
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(elem_size), bytes)) {
    return absl::InvalidArgumentError("shape's byte size overflows 64 bits");
  }
  return absl::OkStatus();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", shape[i]);
  }
  return out + "]";
}

// Reads a JSON array of non-negative integers into `out`.
absl::Status ReadUnsignedArray(const Json& value, absl::string_view field,
                               std::vector<uint64_t>* out) {
  if (!value.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", field, "' must be an array, got ", JsonTypeName(value)));
  }
  out->clear();
  out->reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& item = value[i];
    if (item.is_number_unsigned()) {
      out->push_back(item.get<uint64_t>());
    } else if (item.is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", field, "'[", i, "] is negative (", item.get<int64_t>(), ")"));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", field, "'[", i, "] must be a non-negative integer, got ",
          item.is_number_float() ? "a non-integer or out-of-range "
                                   "number"
                                 : JsonTypeName(item)));
    }
  }
  return absl::OkStatus();
}

// Parses one tensor entry {"dtype", "shape", "data_offsets"}; the message of
// an error does not name the tensor (the caller adds it).
absl::Status ParseTensorEntry(const Json& entry, TensorInfo* info) {
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry must be an object, got ", JsonTypeName(entry)));
  }
  for (const auto& [key, unused] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected field '", key,
                       "' (only dtype, shape, data_offsets are allowed)"));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing field '", key, "'"));
    }
  }
  const Json& dtype = entry["dtype"];
  if (!dtype.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'dtype' must be a string, got ", JsonTypeName(dtype)));
  }
  DYLORA_ASSIGN_OR_RETURN(info->dtype,
                          ParseDType(dtype.get_ref<const std::string&>()));

  std::vector<uint64_t> dims;
  DYLORA_RETURN_IF_ERROR(ReadUnsignedArray(entry["shape"], "shape", &dims));
  info->shape.clear();
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat("'shape'[", i, "] is too large (", dims[i], ")"));
    }
    info->shape.push_back(static_cast<int64_t>(dims[i]));
  }
  uint64_t bytes = 0;
  if (absl::Status s = ShapeBytes(info->shape, DTypeSize(info->dtype), &bytes);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeString(info->shape), ": ", s.message()));
  }

  std::vector<uint64_t> offsets;
  DYLORA_RETURN_IF_ERROR(
      ReadUnsignedArray(entry["data_offsets"], "data_offsets", &offsets));
  if (offsets.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("'data_offsets' must be [begin, end], got ",
                     offsets.size(), " numbers"));
  }
  info->begin = offsets[0];
  info->end = offsets[1];
  if (info->begin > info->end) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_offsets begin ", info->begin, " > end ", info->end));
  }
  if (info->end - info->begin != bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "size mismatch: shape ", ShapeString(info->shape), " of ",
        DTypeName(info->dtype), " needs ", bytes, " bytes but data_offsets [",
        info->begin, ", ", info->end, "] span ", info->end - info->begin));
  }
  return absl::OkStatus();
}

// Parser callback state: nlohmann keeps the last of duplicate keys silently,
// so duplicates (at any level) are caught here. Also bounds the nesting.
struct DuplicateKeyChecker {
  struct OpenObject {
    std::string owner;  // the key whose value this object is ("" at the top)
    std::set<std::string> keys;
  };
  std::vector<OpenObject> open_objects;
  std::string last_key;
  std::string problem;  // first problem seen; empty when none

  bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.push_back({open_objects.empty() ? "" : last_key, {}});
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && problem.empty() && parsed.is_string()) {
          last_key = parsed.get_ref<const std::string&>();
          if (!open_objects.back().keys.insert(last_key).second) {
            problem =
                open_objects.size() == 1
                    ? absl::StrCat("duplicate tensor name '", last_key, "'")
                    : absl::StrCat("'", open_objects.back().owner,
                                   "': duplicate key '", last_key, "'");
          }
        }
        break;
      default:
        break;
    }
    if (depth > kMaxJsonDepth && problem.empty()) {
      problem =
          absl::StrCat("JSON nested deeper than ", kMaxJsonDepth, " levels");
    }
    return true;
  }
};


}  // namespace

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype '", name,
      "' (supported: BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64)"));
}

absl::string_view DTypeName(DType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.name;
  }
  return "?";
}

size_t DTypeSize(DType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.size;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;  // validated not to overflow
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapped_ != nullptr) ::munmap(mapped_, mapped_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  auto opened = OpenRegularFile(path);
  if (!opened.ok()) return opened.status();
  const int fd = opened->fd;
  const size_t size = opened->size;
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->origin_ = path;
  if (size > 0) {
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
      absl::Status status = ErrnoToStatus("cannot mmap", path);
      ::close(fd);
      return status;
    }
    file->mapped_ = mapped;
    file->mapped_size_ = size;
    file->bytes_ = static_cast<const uint8_t*>(mapped);
    file->size_ = size;
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  DYLORA_RETURN_IF_ERROR(file->Parse());
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBytes(
    std::string bytes, std::string origin) {
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->origin_ = std::move(origin);
  file->owned_ = std::move(bytes);
  file->bytes_ = reinterpret_cast<const uint8_t*>(file->owned_.data());
  file->size_ = file->owned_.size();
  DYLORA_RETURN_IF_ERROR(file->Parse());
  return file;
}

absl::Status SafetensorsFile::Parse() {
  auto error = [this](absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors '", origin_, "': ", problem));
  };
  auto tensor_error = [this](absl::string_view name,
                             absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors '", origin_, "': tensor '", name, "': ", problem));
  };

  if (size_ < 8) {
    return error(absl::StrCat("file is ", size_,
                              " bytes, shorter than the 8-byte header length "
                              "(truncated or not a safetensors file)"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes_[i];
  if (header_len > kMaxHeaderBytes) {
    return error(absl::StrCat("header length ", header_len,
                              " exceeds the format's limit of ",
                              kMaxHeaderBytes, " bytes"));
  }
  if (header_len > size_ - 8) {
    return error(absl::StrCat("header length ", header_len,
                              " exceeds the file size ", size_,
                              " minus 8 (truncated file?)"));
  }
  const char* header = reinterpret_cast<const char*>(bytes_ + 8);
  const absl::string_view header_text(header, header_len);
  if (size_t bad = 0; !IsValidUtf8(header_text, &bad)) {
    return error(absl::StrCat("header is not valid UTF-8 (at byte ", bad, ")"));
  }

  DuplicateKeyChecker checker;
  Json root;
  try {
    root = Json::parse(header, header + header_len, std::ref(checker),
                       /*allow_exceptions=*/false);
  } catch (const nlohmann::json::exception& e) {
    return error(absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (root.is_discarded()) return error("header is not valid JSON");
  if (!checker.problem.empty()) return error(checker.problem);
  if (!root.is_object()) {
    return error(
        absl::StrCat("header must be a JSON object, got ", JsonTypeName(root)));
  }

  data_start_ = bytes_ + 8 + header_len;
  const uint64_t data_size = size_ - 8 - header_len;
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  tensors.reserve(root.size());
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) {
        return error(absl::StrCat("'__metadata__' must be an object, got ",
                                  JsonTypeName(value)));
      }
      for (const auto& [key, item] : value.items()) {
        if (!item.is_string()) {
          return error(absl::StrCat("'__metadata__' value for key '", key,
                                    "' must be a string, got ",
                                    JsonTypeName(item)));
        }
        metadata[key] = item.get<std::string>();
      }
      continue;
    }
    if (name.empty()) return error("a tensor has an empty name");
    TensorInfo info;
    info.name = name;
    if (absl::Status s = ParseTensorEntry(value, &info); !s.ok()) {
      return tensor_error(name, s.message());
    }
    if (info.end > data_size) {
      return tensor_error(name,
                          absl::StrCat("data_offsets end ", info.end,
                                       " is past the data section (", data_size,
                                       " bytes; truncated file?)"));
    }
    tensors.push_back(std::move(info));
  }

  // The byte buffer must be entirely indexed: sorted by offset, tensors tile
  // [0, data_size) with no gap and no overlap.
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return std::tie(a.begin, a.end, a.name) <
                     std::tie(b.begin, b.end, b.name);
            });
  uint64_t expected = 0;
  for (const TensorInfo& info : tensors) {
    if (info.begin < expected) {
      return tensor_error(
          info.name, absl::StrCat("data_offsets [", info.begin, ", ", info.end,
                                  "] overlap the previous "
                                  "tensor, which ends at ",
                                  expected));
    }
    if (info.begin > expected) {
      return tensor_error(
          info.name,
          absl::StrCat("gap in the data section: data_offsets "
                       "begin ",
                       info.begin, " but the previous tensor ends at ",
                       expected));
    }
    expected = info.end;
  }
  if (expected != data_size) {
    return error(absl::StrCat("data section is ", data_size,
                              " bytes but the tensors index only ", expected,
                              " (trailing bytes not covered by any tensor)"));
  }

  tensors_ = std::move(tensors);
  metadata_ = std::move(metadata);
  by_name_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) by_name_[tensors_[i].name] = i;
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Data(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(data_start_ + info.begin,
                                   info.end - info.begin);
}

absl::StatusOr<std::string> SerializeSafetensors(
    const std::vector<TensorToWrite>& tensors,
    const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the header in the caller's order, which makes files
  // reproducible and easy to read.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) {
      if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("safetensors writer: metadata key '", key,
                         "' or its value is not valid UTF-8"));
      }
      meta[key] = value;
    }
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    auto tensor_error = [&t](absl::string_view problem) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors writer: tensor '", t.name, "': ", problem));
    };
    if (t.name.empty()) return tensor_error("empty name");
    if (t.name == kMetadataKey) {
      return tensor_error("the name '__metadata__' is reserved");
    }
    if (!IsValidUtf8(t.name)) return tensor_error("name is not valid UTF-8");
    if (!seen.insert(t.name).second) return tensor_error("duplicate name");
    if (DTypeSize(t.dtype) == 0) return tensor_error("unknown dtype");
    uint64_t bytes = 0;
    if (absl::Status s = ShapeBytes(t.shape, DTypeSize(t.dtype), &bytes);
        !s.ok()) {
      return tensor_error(
          absl::StrCat("shape ", ShapeString(t.shape), ": ", s.message()));
    }
    if (bytes != t.data.size()) {
      return tensor_error(
          absl::StrCat("size mismatch: shape ", ShapeString(t.shape), " of ",
                       DTypeName(t.dtype), " needs ", bytes, " bytes but ",
                       t.data.size(), " were given"));
    }
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat(
        "safetensors writer: cannot serialize header: ", e.what()));
  }
  // Pad with spaces (allowed by the format) so the data starts 8-aligned.
  header_text.append((8 - (8 + header_text.size()) % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header_text.size() + offset);
  uint64_t len = header_text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(len >> (8 * i)));
  out += header_text;
  for (const TensorToWrite& t : tensors) {
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  }
  return out;
}

absl::Status WriteSafetensors(
    const std::string& path, const std::vector<TensorToWrite>& tensors,
    const std::map<std::string, std::string>& metadata) {
  DYLORA_ASSIGN_OR_RETURN(std::string bytes,
                          SerializeSafetensors(tensors, metadata));
  if (absl::Status s = WriteFileAtomically(path, bytes); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("safetensors '", path, "': ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace dylora
