// The names that travel on the wire outside the .proto files, written once
// for the server and the client: KServe v2 tensor and parameter names, rank
// policy names and execution path names. Header-only, no dependencies.
#pragma once

#include <string_view>

namespace dylora::wire {

// KServe v2 (ModelInfer) inputs: BYTES tensors of shape [N] or [N, 1].
inline constexpr char kTextInput[] = "TEXT";
inline constexpr char kTextPairInput[] = "TEXT_PAIR";
// KServe v2 outputs: FP32 [N, width].
inline constexpr char kLogitsOutput[] = "logits";
inline constexpr char kProbabilitiesOutput[] = "probabilities";
inline constexpr char kEmbeddingOutput[] = "embedding";

// KServe v2 request parameters choosing the rank (at most one of them).
inline constexpr char kRankParameter[] = "rank";  // int64
inline constexpr char kProfileParameter[] = "profile";
inline constexpr char kPolicyParameter[] = "policy";
// KServe v2 response parameters.
inline constexpr char kRankSourceParameter[] = "rank_source";
inline constexpr char kExecutionPathParameter[] = "execution_path";

// Rank policies (KServe `policy` parameter, CLI flags, metrics).
inline constexpr char kPolicyMax[] = "max";
inline constexpr char kPolicyBest[] = "best";
inline constexpr char kPolicySmallestWithinTolerance[] =
    "smallest-within-tolerance";
inline constexpr char kPolicyNames[] = "max, best, smallest-within-tolerance";

// The canonical policy name for `name` (underscores are accepted for the
// dashes); nullptr for an unknown name.
inline const char* CanonicalPolicyName(std::string_view name) {
  for (const char* policy : {kPolicyMax, kPolicyBest}) {
    if (name == policy) return policy;
  }
  if (name == kPolicySmallestWithinTolerance ||
      name == "smallest_within_tolerance") {
    return kPolicySmallestWithinTolerance;
  }
  return nullptr;
}

// Execution paths (KServe `execution_path`, metrics labels, client output).
inline constexpr char kPathBackbone[] = "backbone";
inline constexpr char kPathTruncated[] = "truncated";
inline constexpr char kPathMerged[] = "merged";

}  // namespace dylora::wire
