#include "core/io/torch_tensors.h"

#include <ATen/ATen.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {

at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return at::kBool;
    case DType::kU8:
      return at::kByte;
    case DType::kI8:
      return at::kChar;
    case DType::kI16:
      return at::kShort;
    case DType::kI32:
      return at::kInt;
    case DType::kI64:
      return at::kLong;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kF32:
      return at::kFloat;
    case DType::kF64:
      return at::kDouble;
  }
  return at::kFloat;  // unreachable: every enumerator is handled
}

absl::StatusOr<DType> FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kBool:
      return DType::kBool;
    case at::kByte:
      return DType::kU8;
    case at::kChar:
      return DType::kI8;
    case at::kShort:
      return DType::kI16;
    case at::kInt:
      return DType::kI32;
    case at::kLong:
      return DType::kI64;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kFloat:
      return DType::kF32;
    case at::kDouble:
      return DType::kF64;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("torch dtype ", c10::toString(type),
                       " cannot be stored in safetensors by dylora"));
  }
}

absl::StatusOr<at::Tensor> ToTensor(const SafetensorsFile& file,
                                    const TensorInfo& info) {
  const TensorInfo* own = file.Find(info.name);
  if (own == nullptr || own->begin != info.begin || own->end != info.end ||
      own->dtype != info.dtype || own->shape != info.shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors '", file.origin(), "': tensor '", info.name,
                     "' does not belong to this file"));
  }
  const absl::Span<const uint8_t> bytes = file.Data(*own);
  return CallTorch(absl::StrCat("safetensors '", file.origin(), "': tensor '",
                                info.name, "': cannot create the torch tensor"),
                   [&] {
                     at::Tensor t = at::empty(
                         own->shape,
                         at::TensorOptions().dtype(ToScalarType(own->dtype)));
                     if (!bytes.empty())
                       std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
                     return t;
                   });
}

absl::StatusOr<at::Tensor> ToFloat32Tensor(const SafetensorsFile& file,
                                           const TensorInfo& info) {
  DYLORA_ASSIGN_OR_RETURN(at::Tensor t, ToTensor(file, info));
  if (t.scalar_type() == at::kFloat) return t;
  return CallTorch(absl::StrCat("safetensors '", file.origin(), "': tensor '",
                                info.name, "': cannot convert to float32"),
                   [&] { return t.to(at::kFloat); });
}

absl::Status CheckFinite(const at::Tensor& tensor, absl::string_view origin,
                         absl::string_view name) {
  if (!at::isFloatingType(tensor.scalar_type())) return absl::OkStatus();
  DYLORA_ASSIGN_OR_RETURN(
      int64_t non_finite,
      CallTorch(
          absl::StrCat(origin, ": tensor '", name, "': finite check"), [&] {
            return at::logical_not(at::isfinite(tensor)).sum().item<int64_t>();
          }));
  if (non_finite == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(origin, ": tensor '", name, "' holds ", non_finite,
                   " NaN or Inf value", non_finite == 1 ? "" : "s"));
}

absl::StatusOr<std::map<std::string, at::Tensor>> LoadTensors(
    const std::string& path) {
  DYLORA_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  std::map<std::string, at::Tensor> out;
  for (const TensorInfo& info : file->tensors()) {
    DYLORA_ASSIGN_OR_RETURN(at::Tensor t, ToTensor(*file, info));
    out.emplace(info.name, std::move(t));
  }
  return out;
}

absl::StatusOr<std::string> SerializeTensors(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  // Contiguous CPU copies, alive until serialization is done.
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  std::vector<TensorToWrite> to_write;
  to_write.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    auto tensor_error = [&name](absl::string_view problem) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors writer: tensor '", name, "': ", problem));
    };
    if (!tensor.defined()) return tensor_error("undefined tensor");
    if (tensor.layout() != at::kStrided) {
      return tensor_error("only dense (strided) tensors can be saved");
    }
    absl::StatusOr<DType> dtype = FromScalarType(tensor.scalar_type());
    if (!dtype.ok()) return tensor_error(dtype.status().message());
    DYLORA_ASSIGN_OR_RETURN(
        at::Tensor c,
        CallTorch(absl::StrCat("safetensors writer: tensor '", name,
                               "': cannot copy to a contiguous CPU tensor"),
                  [&] { return tensor.detach().to(at::kCPU).contiguous(); }));
    cpu.push_back(c);
    TensorToWrite w;
    w.name = name;
    w.dtype = *dtype;
    w.shape = std::vector<int64_t>(c.sizes().begin(), c.sizes().end());
    w.data = absl::Span<const uint8_t>(
        static_cast<const uint8_t*>(c.const_data_ptr()), c.nbytes());
    to_write.push_back(std::move(w));
  }
  return SerializeSafetensors(to_write, metadata);
}

absl::Status SaveTensors(
    const std::string& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  DYLORA_ASSIGN_OR_RETURN(std::string bytes,
                          SerializeTensors(tensors, metadata));
  if (absl::Status s = WriteFileAtomically(path, bytes); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("safetensors '", path, "': ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace dylora
