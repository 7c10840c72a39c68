#include "core/io/fingerprint.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/util/status_macros.h"

namespace dylora {
namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

class Hasher {
 public:
  void Bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) state_ = (state_ ^ p[i]) * kFnvPrime;
  }
  void U64(uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(v >> (8 * i));
    Bytes(le, 8);
  }
  void String(absl::string_view s) {
    U64(s.size());
    Bytes(s.data(), s.size());
  }
  // Tensor data: four independent lanes so the multiplies pipeline.
  void Data(const uint8_t* p, size_t n) {
    uint64_t lanes[4] = {kFnvOffset, kFnvOffset ^ 1, kFnvOffset ^ 2,
                         kFnvOffset ^ 3};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      for (int k = 0; k < 4; ++k) {
        uint64_t w;
        std::memcpy(&w, p + i + 8 * k, 8);  // little-endian host assumed
        lanes[k] = (lanes[k] ^ w) * kFnvPrime;
        lanes[k] ^= lanes[k] >> 32;
      }
    }
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      lanes[0] = (lanes[0] ^ w) * kFnvPrime;
      lanes[0] ^= lanes[0] >> 32;
    }
    Bytes(p + i, n - i);
    for (uint64_t lane : lanes) U64(lane);
  }
  uint64_t Finish() const {
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_ = kFnvOffset;
};

}  // namespace

absl::StatusOr<std::string> FingerprintSafetensors(
    const SafetensorsFile& file) {
  std::vector<const TensorInfo*> sorted;
  sorted.reserve(file.tensors().size());
  for (const TensorInfo& info : file.tensors()) sorted.push_back(&info);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) {
              return a->name < b->name;
            });
  Hasher h;
  h.String("dylora-safetensors-fingerprint-v1");
  h.U64(sorted.size());
  for (const TensorInfo* info : sorted) {
    h.String(info->name);
    h.String(DTypeName(info->dtype));
    h.U64(info->shape.size());
    for (int64_t dim : info->shape) h.U64(static_cast<uint64_t>(dim));
    const absl::Span<const uint8_t> data = file.Data(*info);
    h.U64(data.size());
    h.Data(data.data(), data.size());
  }
  const uint64_t digest = h.Finish();
  std::string hex(16, '0');
  for (int i = 15, shift = 0; i >= 0; --i, shift += 4) {
    hex[i] = "0123456789abcdef"[(digest >> shift) & 0xF];
  }
  return hex;
}

absl::StatusOr<std::string> FingerprintSafetensorsFile(
    const std::string& path) {
  DYLORA_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  return FingerprintSafetensors(*file);
}

}  // namespace dylora
