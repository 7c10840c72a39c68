#include "core/tokenizer/vocab.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/unicode.h"

namespace dylora {

absl::StatusOr<Vocab> Vocab::FromJsonObject(const nlohmann::json& json,
                                            absl::string_view context) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": vocab must be a JSON object {token: id}"));
  }
  const size_t n = json.size();
  if (n == 0) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": empty vocab"));
  }
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": vocab too large"));
  }
  Vocab vocab;
  vocab.tokens_.resize(n);
  std::vector<bool> seen(n, false);
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (!it.value().is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": id of token \"", it.key(),
                       "\" must be a non-negative integer"));
    }
    const uint64_t id = it.value().get<uint64_t>();
    if (id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": ids are not contiguous: token \"", it.key(),
                       "\" has id ", id, " but the vocab has ", n, " tokens"));
    }
    if (seen[id]) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": duplicate id ", id, " (tokens \"",
                       vocab.tokens_[id], "\" and \"", it.key(), "\")"));
    }
    if (!unicode::DecodeUtf8(it.key()).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": token with id ", id, " is not valid UTF-8"));
    }
    seen[id] = true;
    vocab.tokens_[id] = it.key();
    vocab.ids_.emplace(it.key(), static_cast<int32_t>(id));
  }
  return vocab;
}

absl::StatusOr<Vocab> Vocab::FromLines(absl::string_view text,
                                       absl::string_view context) {
  Vocab vocab;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() &&
           (line.back() == ' ' || line.back() == '\t' || line.back() == '\r' ||
            line.back() == '\v' || line.back() == '\f')) {
      line.remove_suffix(1);
    }
    const int32_t id = static_cast<int32_t>(vocab.tokens_.size());
    if (!unicode::DecodeUtf8(line).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": line ", id + 1, " is not valid UTF-8"));
    }
    if (!vocab.ids_.emplace(std::string(line), id).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": duplicate token \"", line, "\" on line ", id + 1));
    }
    vocab.tokens_.emplace_back(line);
  }
  if (vocab.tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": empty vocab"));
  }
  return vocab;
}

}  // namespace dylora
