// Which rank a request runs at: an explicit rank, a device profile from the
// server configuration ("phone" -> 2), or a policy over the adapter's rank
// table. Pure functions and a small value type; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/adapter/adapter.h"

namespace dylora::serving {

enum class RankPolicy { kMax, kBest, kSmallestWithinTolerance };

// "max", "best", "smallest-within-tolerance" (also with underscores);
// INVALID_ARGUMENT listing the valid names otherwise.
absl::StatusOr<RankPolicy> ParseRankPolicy(absl::string_view name);
const char* RankPolicyName(RankPolicy policy);  // "max", "best", ...

// Named rank budgets for classes of clients.
class DeviceProfiles {
 public:
  // Entries "name=rank" (e.g. {"phone=2", "edge=4"}); INVALID_ARGUMENT for a
  // malformed entry, a rank < 1 or a repeated name.
  static absl::StatusOr<DeviceProfiles> Parse(
      absl::Span<const std::string> entries);
  absl::Status Add(absl::string_view name, int64_t rank);
  std::optional<int64_t> Find(absl::string_view name) const;
  const std::map<std::string, int64_t, std::less<>>& entries() const {
    return ranks_;
  }

 private:
  std::map<std::string, int64_t, std::less<>> ranks_;
};

// What the request asked for.
struct RankSelector {
  enum class Kind { kDefault, kRank, kProfile, kPolicy };
  static RankSelector Default() { return {}; }
  static RankSelector Rank(int64_t rank) { return {Kind::kRank, rank, "", {}}; }
  static RankSelector Profile(std::string name) {
    return {Kind::kProfile, 0, std::move(name), {}};
  }
  static RankSelector Policy(RankPolicy policy) {
    return {Kind::kPolicy, 0, "", policy};
  }

  Kind kind = Kind::kDefault;
  int64_t rank = 0;
  std::string profile;
  RankPolicy policy = RankPolicy::kMax;
};

struct ResolvedRank {
  int64_t rank = 0;
  std::string source;  // "rank", "profile:<name>", "policy:<name>"
};

// Rules:
// - kRank: must lie in [r_min, r_max], else INVALID_ARGUMENT naming the range.
// - kProfile: unknown name -> INVALID_ARGUMENT listing the known profiles.
//   The profile's rank is a budget: min(budget, r_max); a budget below r_min
//   -> INVALID_ARGUMENT naming the range.
// - kPolicy / kDefault (uses `default_policy`): max -> r_max; best and
//   smallest-within-tolerance come from the adapter's rank table and are
//   FAILED_PRECONDITION when it has none.
absl::StatusOr<ResolvedRank> ResolveRank(const RankSelector& selector,
                                         const DyLoraAdapter& adapter,
                                         const DeviceProfiles& profiles,
                                         RankPolicy default_policy);

}  // namespace dylora::serving
