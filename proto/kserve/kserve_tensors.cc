#include "proto/kserve/kserve_tensors.h"

#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"

namespace dylora::kserve {

absl::StatusOr<std::vector<std::string>> DecodeRawBytesTensor(
    absl::string_view raw, int64_t expected, absl::string_view tensor_name) {
  std::vector<std::string> elements;
  size_t offset = 0;
  while (offset < raw.size()) {
    if (raw.size() - offset < 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", tensor_name, ": truncated length prefix at byte ", offset));
    }
    const uint32_t length = absl::little_endian::Load32(raw.data() + offset);
    offset += 4;
    if (length > raw.size() - offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", tensor_name, ": element ", elements.size(), " claims ",
          length, " bytes but only ", raw.size() - offset, " remain"));
    }
    if (static_cast<int64_t>(elements.size()) == expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", tensor_name, ": more than the ", expected,
                       " elements its shape declares"));
    }
    elements.emplace_back(raw.substr(offset, length));
    offset += length;
  }
  if (static_cast<int64_t>(elements.size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("input ", tensor_name, ": shape declares ", expected,
                     " elements but the raw contents hold ", elements.size()));
  }
  return elements;
}

std::string EncodeRawBytesTensor(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& element : elements) {
    char prefix[4];
    absl::little_endian::Store32(prefix, static_cast<uint32_t>(element.size()));
    raw.append(prefix, 4);
    raw.append(element);
  }
  return raw;
}

std::string EncodeRawFp32(const float* values, size_t count) {
  std::string raw(count * sizeof(float), '\0');
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], sizeof(bits));
    absl::little_endian::Store32(raw.data() + i * 4, bits);
  }
  return raw;
}

std::vector<float> DecodeRawFp32(absl::string_view raw) {
  std::vector<float> values(raw.size() / 4);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint32_t bits = absl::little_endian::Load32(raw.data() + i * 4);
    std::memcpy(&values[i], &bits, sizeof(bits));
  }
  return values;
}

}  // namespace dylora::kserve
