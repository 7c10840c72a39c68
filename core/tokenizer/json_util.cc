#include "core/tokenizer/json_util.h"

#include "absl/strings/str_cat.h"

namespace dylora::json_util {
namespace {

const nlohmann::json* Find(const nlohmann::json& obj, absl::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  return it == obj.end() ? nullptr : &*it;
}

absl::Status Missing(absl::string_view key, absl::string_view context) {
  return absl::InvalidArgumentError(
      absl::StrCat(context, ": missing field \"", key, "\""));
}

absl::Status WrongType(absl::string_view key, absl::string_view context,
                       absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat(context, ": field \"", key, "\" must be ", expected));
}

}  // namespace

absl::StatusOr<nlohmann::json> Parse(absl::string_view text,
                                     absl::string_view what) {
  nlohmann::json json = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": malformed JSON"));
  }
  return json;
}

absl::StatusOr<std::string> GetString(const nlohmann::json& obj,
                                      absl::string_view key,
                                      absl::string_view context) {
  if (!obj.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": expected a JSON object"));
  }
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr) return Missing(key, context);
  if (!v->is_string()) return WrongType(key, context, "a string");
  return v->get<std::string>();
}

absl::StatusOr<std::optional<std::string>> GetOptionalString(
    const nlohmann::json& obj, absl::string_view key,
    absl::string_view context) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(key, context, "a string or null");
  return std::optional<std::string>(v->get<std::string>());
}

absl::StatusOr<bool> GetBool(const nlohmann::json& obj, absl::string_view key,
                             absl::string_view context, bool fallback) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return WrongType(key, context, "a boolean");
  return v->get<bool>();
}

absl::StatusOr<std::optional<bool>> GetOptionalBool(const nlohmann::json& obj,
                                                    absl::string_view key,
                                                    absl::string_view context) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr || v->is_null()) return std::optional<bool>();
  if (!v->is_boolean()) return WrongType(key, context, "a boolean or null");
  return std::optional<bool>(v->get<bool>());
}

absl::StatusOr<int64_t> GetInt(const nlohmann::json& obj, absl::string_view key,
                               absl::string_view context,
                               std::optional<int64_t> fallback) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr) {
    if (fallback.has_value()) return *fallback;
    return Missing(key, context);
  }
  if (!v->is_number_unsigned()) {
    return WrongType(key, context, "a non-negative integer");
  }
  const uint64_t value = v->get<uint64_t>();
  if (value > (uint64_t{1} << 40)) {
    return WrongType(key, context, "a reasonably small integer");
  }
  return static_cast<int64_t>(value);
}

absl::StatusOr<std::optional<int64_t>> GetOptionalInt(
    const nlohmann::json& obj, absl::string_view key,
    absl::string_view context) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  absl::StatusOr<int64_t> value = GetInt(obj, key, context);
  if (!value.ok()) return value.status();
  return std::optional<int64_t>(*value);
}

absl::StatusOr<const nlohmann::json*> GetArray(const nlohmann::json& obj,
                                               absl::string_view key,
                                               absl::string_view context) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr) return Missing(key, context);
  if (!v->is_array()) return WrongType(key, context, "an array");
  return v;
}

absl::StatusOr<const nlohmann::json*> GetObject(const nlohmann::json& obj,
                                                absl::string_view key,
                                                absl::string_view context) {
  const nlohmann::json* v = Find(obj, key);
  if (v == nullptr) return Missing(key, context);
  if (!v->is_object()) return WrongType(key, context, "an object");
  return v;
}

}  // namespace dylora::json_util
