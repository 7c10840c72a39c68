// Typed field access on nlohmann::json objects for the tokenizer loaders.
// Every accessor checks the type and returns INVALID_ARGUMENT naming the
// `context` (e.g. "model") and the field instead of throwing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dylora::json_util {

// Parses text with exceptions off; `what` names the source in errors.
absl::StatusOr<nlohmann::json> Parse(absl::string_view text,
                                     absl::string_view what);

absl::StatusOr<std::string> GetString(const nlohmann::json& obj,
                                      absl::string_view key,
                                      absl::string_view context);
// Missing or null -> nullopt.
absl::StatusOr<std::optional<std::string>> GetOptionalString(
    const nlohmann::json& obj, absl::string_view key,
    absl::string_view context);
// Missing -> `fallback`.
absl::StatusOr<bool> GetBool(const nlohmann::json& obj, absl::string_view key,
                             absl::string_view context, bool fallback);
// Missing or null -> nullopt.
absl::StatusOr<std::optional<bool>> GetOptionalBool(const nlohmann::json& obj,
                                                    absl::string_view key,
                                                    absl::string_view context);
// A non-negative integer; missing -> `fallback` (if given) else an error.
absl::StatusOr<int64_t> GetInt(const nlohmann::json& obj, absl::string_view key,
                               absl::string_view context,
                               std::optional<int64_t> fallback = std::nullopt);
// Missing or null -> nullopt.
absl::StatusOr<std::optional<int64_t>> GetOptionalInt(
    const nlohmann::json& obj, absl::string_view key,
    absl::string_view context);
absl::StatusOr<const nlohmann::json*> GetArray(const nlohmann::json& obj,
                                               absl::string_view key,
                                               absl::string_view context);
absl::StatusOr<const nlohmann::json*> GetObject(const nlohmann::json& obj,
                                                absl::string_view key,
                                                absl::string_view context);

}  // namespace dylora::json_util
