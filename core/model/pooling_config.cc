#include "core/model/pooling_config.h"

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace dylora {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr size_t kMaxJsonBytes = 1 << 20;  // both files are a few hundred bytes
constexpr char kPoolingType[] = "sentence_transformers.models.Pooling";

absl::StatusOr<Json> ReadJson(const std::string& path) {
  DYLORA_ASSIGN_OR_RETURN(std::string text,
                          ReadFileToString(path, kMaxJsonBytes));
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  }
  return j;
}

// The Pooling module's folder relative to the model directory, or nullopt.
absl::StatusOr<std::optional<std::string>> PoolingModulePath(
    const Json& modules, const std::string& origin) {
  if (!modules.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": must be a list of modules"));
  }
  for (const Json& module : modules) {
    if (!module.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": every module must be an object"));
    }
    auto type = module.find("type");
    if (type == module.end() || !type->is_string() ||
        type->get<std::string>() != kPoolingType) {
      continue;
    }
    auto path = module.find("path");
    if (path == module.end() || !path->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": the Pooling module has no string field \"path\""));
    }
    const fs::path relative(path->get<std::string>());
    for (const fs::path& part : relative) {
      if (part == "..") {
        return absl::InvalidArgumentError(
            absl::StrCat(origin, ": the Pooling module's path \"",
                         relative.string(), "\" leaves the model directory"));
      }
    }
    if (relative.is_absolute()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": the Pooling module's path \"",
                       relative.string(), "\" is absolute"));
    }
    return std::optional<std::string>(relative.string());
  }
  return std::optional<std::string>();
}

absl::StatusOr<PoolingMode> ModeFromConfig(const Json& config,
                                           const std::string& origin) {
  if (!config.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": must be a JSON object"));
  }
  auto flag = [&](const char* key) -> absl::StatusOr<bool> {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return false;
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": field \"", key, "\" must be a boolean"));
    }
    return it->get<bool>();
  };
  for (const char* unsupported :
       {"pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"}) {
    DYLORA_ASSIGN_OR_RETURN(bool set, flag(unsupported));
    if (set) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", unsupported,
                       " is not supported (cls, mean, max, "
                       "mean_sqrt_len are)"));
    }
  }
  if (auto it = config.find("include_prompt");
      it != config.end() && !(it->is_boolean() && it->get<bool>())) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": include_prompt other than true is not supported"));
  }
  const std::pair<const char*, PoolingMode> modes[] = {
      {"pooling_mode_cls_token", PoolingMode::kCls},
      {"pooling_mode_mean_tokens", PoolingMode::kMean},
      {"pooling_mode_max_tokens", PoolingMode::kMax},
      {"pooling_mode_mean_sqrt_len_tokens", PoolingMode::kMeanSqrtLen},
  };
  std::vector<std::string> set;
  PoolingMode chosen = PoolingMode::kMean;
  for (const auto& [key, mode] : modes) {
    DYLORA_ASSIGN_OR_RETURN(bool on, flag(key));
    if (on) {
      set.push_back(key);
      chosen = mode;
    }
  }
  if (set.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": exactly one pooling mode must be true, found ",
        set.empty() ? std::string("none") : absl::StrJoin(set, ", "),
        " (concatenated modes are not supported)"));
  }
  return chosen;
}

}  // namespace

absl::StatusOr<std::optional<PoolingMode>> ReadDeclaredPooling(
    const std::string& model_dir) {
  const fs::path modules_path = fs::path(model_dir) / "modules.json";
  std::error_code ec;
  if (!fs::exists(modules_path, ec)) return std::optional<PoolingMode>();
  DYLORA_ASSIGN_OR_RETURN(Json modules, ReadJson(modules_path.string()));
  DYLORA_ASSIGN_OR_RETURN(std::optional<std::string> folder,
                          PoolingModulePath(modules, modules_path.string()));
  if (!folder.has_value()) return std::optional<PoolingMode>();
  const std::string config_path =
      (fs::path(model_dir) / *folder / "config.json").string();
  DYLORA_ASSIGN_OR_RETURN(Json config, ReadJson(config_path));
  DYLORA_ASSIGN_OR_RETURN(PoolingMode mode,
                          ModeFromConfig(config, config_path));
  return std::optional<PoolingMode>(mode);
}

}  // namespace dylora
