// Rank lists on the command line: "4", "1-8" (inclusive), "2,4,8", or a mix
// ("1-3,8"). Used for sweep --ranks, bench --rank-mix and load --prewarm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora::client {

// The ranks in the order written, ranges expanded. INVALID_ARGUMENT naming
// `flag` for an empty list, a rank < 1, a reversed range or a range wider
// than 4096 ranks. Duplicates are kept: in a rank mix they weight the draw.
absl::StatusOr<std::vector<int64_t>> ParseRankList(absl::string_view text,
                                                   absl::string_view flag);

// "1-8" for consecutive ranks, "2,4,8" otherwise (for headers).
std::string FormatRankList(const std::vector<int64_t>& ranks);

}  // namespace dylora::client
