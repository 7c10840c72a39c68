#include "server/registry/rank_resolver.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "proto/wire_names.h"

namespace dylora::serving {
namespace {

std::string RangeText(const AdapterConfig& config) {
  return absl::StrCat("[", config.r_min, ", ", config.r_max, "]");
}

std::string KnownProfiles(const DeviceProfiles& profiles) {
  if (profiles.entries().empty()) return "none are configured";
  std::vector<std::string> names;
  for (const auto& [name, rank] : profiles.entries()) {
    names.push_back(absl::StrCat(name, " (rank ", rank, ")"));
  }
  return absl::StrCat("known profiles: ", absl::StrJoin(names, ", "));
}

// The rank `policy` picks from the adapter's rank table.
absl::StatusOr<int64_t> RankFromTable(RankPolicy policy,
                                      const DyLoraAdapter& adapter) {
  const RankMetrics& metrics = adapter.rank_metrics();
  std::optional<int64_t> rank = policy == RankPolicy::kBest
                                    ? metrics.best_rank
                                    : metrics.smallest_rank_within_tolerance;
  if (!rank.has_value() && !metrics.empty()) {
    // A table without stored recommendations (older files, or one filled in
    // by hand): derive them the way the trainer does.
    RankMetrics computed = metrics;
    computed.Recommend(metrics.tolerance);
    rank = policy == RankPolicy::kBest
               ? computed.best_rank
               : computed.smallest_rank_within_tolerance;
  }
  if (!rank.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank policy ", RankPolicyName(policy),
        " needs the adapter's rank table, and this adapter has none; ask for "
        "an explicit rank, a device profile or policy max"));
  }
  const AdapterConfig& config = adapter.config();
  if (*rank < config.r_min || *rank > config.r_max) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank policy ", RankPolicyName(policy), " picks rank ", *rank,
        " from the adapter's rank table, outside this adapter's range ",
        RangeText(config)));
  }
  return *rank;
}

}  // namespace

absl::StatusOr<RankPolicy> ParseRankPolicy(absl::string_view name) {
  const char* policy =
      wire::CanonicalPolicyName(std::string_view(name.data(), name.size()));
  if (policy == wire::kPolicyMax) return RankPolicy::kMax;
  if (policy == wire::kPolicyBest) return RankPolicy::kBest;
  if (policy == wire::kPolicySmallestWithinTolerance) {
    return RankPolicy::kSmallestWithinTolerance;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown rank policy \"", name,
                   "\"; valid policies: ", wire::kPolicyNames));
}

const char* RankPolicyName(RankPolicy policy) {
  switch (policy) {
    case RankPolicy::kMax:
      return wire::kPolicyMax;
    case RankPolicy::kBest:
      return wire::kPolicyBest;
    case RankPolicy::kSmallestWithinTolerance:
      return wire::kPolicySmallestWithinTolerance;
  }
  return "unknown";
}

absl::StatusOr<DeviceProfiles> DeviceProfiles::Parse(
    absl::Span<const std::string> entries) {
  DeviceProfiles profiles;
  for (const std::string& entry : entries) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device profile \"", entry, "\" is not of the form name=rank"));
    }
    const absl::string_view name =
        absl::StripAsciiWhitespace(absl::string_view(entry).substr(0, eq));
    const absl::string_view rank_text =
        absl::StripAsciiWhitespace(absl::string_view(entry).substr(eq + 1));
    int64_t rank = 0;
    if (!absl::SimpleAtoi(rank_text, &rank)) {
      return absl::InvalidArgumentError(absl::StrCat("device profile \"", entry,
                                                     "\": rank \"", rank_text,
                                                     "\" is not an integer"));
    }
    DYLORA_RETURN_IF_ERROR(profiles.Add(name, rank));
  }
  return profiles;
}

absl::Status DeviceProfiles::Add(absl::string_view name, int64_t rank) {
  if (name.empty()) {
    return absl::InvalidArgumentError("device profile has an empty name");
  }
  if (rank < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device profile \"", name, "\": rank must be at least 1, got ", rank));
  }
  if (!ranks_.emplace(std::string(name), rank).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("device profile \"", name, "\" is given twice"));
  }
  return absl::OkStatus();
}

std::optional<int64_t> DeviceProfiles::Find(absl::string_view name) const {
  auto it = ranks_.find(name);
  if (it == ranks_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<ResolvedRank> ResolveRank(const RankSelector& selector,
                                         const DyLoraAdapter& adapter,
                                         const DeviceProfiles& profiles,
                                         RankPolicy default_policy) {
  const AdapterConfig& config = adapter.config();
  switch (selector.kind) {
    case RankSelector::Kind::kRank: {
      if (selector.rank < config.r_min || selector.rank > config.r_max) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rank ", selector.rank, " is outside this adapter's range ",
            RangeText(config)));
      }
      return ResolvedRank{selector.rank, "rank"};
    }
    case RankSelector::Kind::kProfile: {
      const std::optional<int64_t> budget = profiles.Find(selector.profile);
      if (!budget.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown device profile \"", selector.profile, "\"; ",
                         KnownProfiles(profiles)));
      }
      // A budget above r_max is served at r_max: the adapter has nothing more.
      if (*budget < config.r_min) {
        return absl::InvalidArgumentError(absl::StrCat(
            "device profile \"", selector.profile, "\" allows rank ", *budget,
            ", below this adapter's range ", RangeText(config)));
      }
      return ResolvedRank{std::min(*budget, config.r_max),
                          absl::StrCat("profile:", selector.profile)};
    }
    case RankSelector::Kind::kPolicy:
    case RankSelector::Kind::kDefault: {
      const RankPolicy policy = selector.kind == RankSelector::Kind::kPolicy
                                    ? selector.policy
                                    : default_policy;
      const std::string source =
          absl::StrCat("policy:", RankPolicyName(policy));
      if (policy == RankPolicy::kMax) return ResolvedRank{config.r_max, source};
      DYLORA_ASSIGN_OR_RETURN(int64_t rank, RankFromTable(policy, adapter));
      return ResolvedRank{rank, source};
    }
  }
  return absl::InvalidArgumentError("unknown rank selector kind");
}

}  // namespace dylora::serving
