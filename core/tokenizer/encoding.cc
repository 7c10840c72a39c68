#include "core/tokenizer/encoding.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dylora {
namespace {

template <typename T>
void Cut(std::vector<T>& v, size_t n, Direction direction) {
  if (v.size() <= n) return;
  if (direction == Direction::kRight) {
    v.resize(n);
  } else {
    v.erase(v.begin(), v.end() - n);
  }
}

void Truncate(Encoding& e, size_t n, Direction direction) {
  Cut(e.ids, n, direction);
  Cut(e.type_ids, n, direction);
  Cut(e.attention_mask, n, direction);
  Cut(e.special_tokens_mask, n, direction);
  Cut(e.tokens, n, direction);
}

template <typename T>
void PadVector(std::vector<T>& v, size_t n, const T& value,
               Direction direction) {
  if (direction == Direction::kRight) {
    v.insert(v.end(), n, value);
  } else {
    v.insert(v.begin(), n, value);
  }
}

}  // namespace

void Encoding::Append(const Encoding& other) {
  ids.insert(ids.end(), other.ids.begin(), other.ids.end());
  type_ids.insert(type_ids.end(), other.type_ids.begin(), other.type_ids.end());
  attention_mask.insert(attention_mask.end(), other.attention_mask.begin(),
                        other.attention_mask.end());
  special_tokens_mask.insert(special_tokens_mask.end(),
                             other.special_tokens_mask.begin(),
                             other.special_tokens_mask.end());
  tokens.insert(tokens.end(), other.tokens.begin(), other.tokens.end());
}

absl::Status TruncateEncodings(Encoding& a, Encoding* b, int64_t max_length,
                               const TruncationParams& params) {
  const size_t max_len = static_cast<size_t>(std::max<int64_t>(max_length, 0));
  const size_t total = a.size() + (b != nullptr ? b->size() : 0);
  if (total <= max_len) return absl::OkStatus();
  const size_t to_remove = total - max_len;
  switch (params.strategy) {
    case TruncationParams::Strategy::kLongestFirst: {
      if (b == nullptr) {
        Truncate(a, max_len, params.direction);
        return absl::OkStatus();
      }
      size_t n1 = a.size();
      size_t n2 = b->size();
      const bool swap = n1 > n2;
      if (swap) std::swap(n1, n2);
      // n1 is now the shorter input: it keeps its length if the longer one
      // can still get at least as much; otherwise both get half.
      n2 = n1 > max_len ? n1 : std::max(n1, max_len - n1);
      if (n1 + n2 > max_len) {
        n1 = max_len / 2;
        n2 = n1 + max_len % 2;
      }
      if (swap) std::swap(n1, n2);
      Truncate(a, n1, params.direction);
      Truncate(*b, n2, params.direction);
      return absl::OkStatus();
    }
    case TruncationParams::Strategy::kOnlyFirst:
    case TruncationParams::Strategy::kOnlySecond: {
      Encoding* target =
          params.strategy == TruncationParams::Strategy::kOnlyFirst ? &a : b;
      if (target == nullptr || target->size() <= to_remove) {
        return absl::InvalidArgumentError(absl::StrCat(
            "truncation: the ",
            params.strategy == TruncationParams::Strategy::kOnlyFirst
                ? "first"
                : "second",
            " sequence is too short to fit max_length ", max_length));
      }
      Truncate(*target, target->size() - to_remove, params.direction);
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void PadEncodings(std::vector<Encoding>& encodings,
                  const PaddingParams& params) {
  size_t target = 0;
  if (params.fixed_length.has_value()) {
    target = static_cast<size_t>(std::max<int64_t>(*params.fixed_length, 0));
  } else {
    for (const Encoding& e : encodings) target = std::max(target, e.size());
  }
  if (params.pad_to_multiple_of.has_value() && *params.pad_to_multiple_of > 0) {
    const size_t m = static_cast<size_t>(*params.pad_to_multiple_of);
    if (target % m != 0) target += m - target % m;
  }
  for (Encoding& e : encodings) {
    if (e.size() >= target) continue;
    const size_t n = target - e.size();
    PadVector(e.ids, n, params.pad_id, params.direction);
    PadVector(e.type_ids, n, params.pad_type_id, params.direction);
    PadVector(e.attention_mask, n, 0, params.direction);
    PadVector(e.special_tokens_mask, n, 1, params.direction);
    PadVector(e.tokens, n, params.pad_token, params.direction);
  }
}

}  // namespace dylora
