// Encoder::Load: a Hugging Face model directory -> Encoder.
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/io/fingerprint.h"
#include "core/io/model_config.h"
#include "core/io/safetensors.h"
#include "core/io/torch_tensors.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"

namespace dylora {

absl::StatusOr<std::unique_ptr<Encoder>> Encoder::Load(
    const std::string& model_dir, const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    if (fs::exists(model_dir, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", model_dir,
          " is a file, not a directory: give the directory holding "
          "config.json, model.safetensors and tokenizer.json"));
    }
    return absl::NotFoundError(
        absl::StrCat("model directory ", model_dir, " does not exist"));
  }
  const std::string config_path =
      (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(config_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model directory ", model_dir, " has no config.json"));
  }
  DYLORA_ASSIGN_OR_RETURN(EncoderConfig config, LoadEncoderConfig(config_path));

  const std::string weights_path =
      (fs::path(model_dir) / "model.safetensors").string();
  if (!fs::exists(weights_path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "model directory ", model_dir,
        " has no model.safetensors (sharded and PyTorch .bin checkpoints are "
        "not supported)"));
  }
  // One mapping serves both the fingerprint and the tensor copies.
  DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                          SafetensorsFile::Open(weights_path));
  DYLORA_ASSIGN_OR_RETURN(std::string fingerprint,
                          FingerprintSafetensors(*file));
  std::map<std::string, at::Tensor> tensors;
  for (const TensorInfo& info : file->tensors()) {
    DYLORA_ASSIGN_OR_RETURN(tensors[info.name], ToTensor(*file, info));
    DYLORA_RETURN_IF_ERROR(
        CheckFinite(tensors[info.name], weights_path, info.name));
  }
  file.reset();
  return FromTensors(config, tensors, options, weights_path,
                     std::move(fingerprint));
}

}  // namespace dylora
