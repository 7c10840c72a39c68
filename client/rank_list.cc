#include "client/rank_list.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dylora::client {
namespace {

constexpr int64_t kMaxRangeWidth = 4096;

absl::StatusOr<int64_t> ParseRank(absl::string_view text,
                                  absl::string_view flag) {
  int64_t rank = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &rank) || rank < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": \"", text, "\" is not a rank (a whole number >= 1)"));
  }
  return rank;
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> ParseRankList(absl::string_view text,
                                                   absl::string_view flag) {
  std::vector<int64_t> ranks;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::vector<absl::string_view> bounds = absl::StrSplit(part, '-');
    if (bounds.size() > 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": \"", part, "\" is not a rank or a range like 1-8"));
    }
    absl::StatusOr<int64_t> low = ParseRank(bounds[0], flag);
    if (!low.ok()) return low.status();
    int64_t high = *low;
    if (bounds.size() == 2) {
      absl::StatusOr<int64_t> parsed = ParseRank(bounds[1], flag);
      if (!parsed.ok()) return parsed.status();
      high = *parsed;
      if (high < *low) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": the range ", part, " runs backwards"));
      }
      if (high - *low >= kMaxRangeWidth) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": the range ", part, " is wider than ",
                         kMaxRangeWidth, " ranks"));
      }
    }
    for (int64_t rank = *low; rank <= high; ++rank) ranks.push_back(rank);
  }
  return ranks;
}

std::string FormatRankList(const std::vector<int64_t>& ranks) {
  bool consecutive = ranks.size() > 2;
  for (size_t i = 1; i < ranks.size() && consecutive; ++i) {
    consecutive = ranks[i] == ranks[i - 1] + 1;
  }
  if (consecutive) return absl::StrCat(ranks.front(), "-", ranks.back());
  return absl::StrJoin(ranks, ",");
}

}  // namespace dylora::client
