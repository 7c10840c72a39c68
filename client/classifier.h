// One classification request over either protocol: dylora.v1 Classify or
// KServe v2 ModelInfer (raw BYTES TEXT/TEXT_PAIR, rank/profile/policy as
// parameters). Both answers become the same ClassifyResult, so every
// command prints and measures them alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/connection.h"
#include "client/text_input.h"

namespace dylora::client {

enum class Protocol { kDyloraV1, kKServe };
const char* ProtocolName(Protocol protocol);  // "dylora.v1", "kserve"

// How the server picks the rank; at most one is set (none: its default).
struct RankChoice {
  std::optional<int64_t> rank;
  std::string profile;
  std::string policy;  // max | best | smallest-within-tolerance

  // "rank 4", "profile phone", "policy best", "server default".
  std::string Describe() const;
};

// INVALID_ARGUMENT when more than one is set, the rank is < 1 or the policy
// is unknown (checked before anything is sent).
absl::Status ValidateRankChoice(const RankChoice& choice);

// "max" | "best" | "smallest-within-tolerance" as the dylora.v1 enum;
// INVALID_ARGUMENT naming the valid ones otherwise.
absl::StatusOr<v1::RankPolicy> V1RankPolicy(absl::string_view name);

// Sets the rank_selector oneof (rank | profile | policy) of a dylora.v1
// request (ClassifyRequest, ExportAdapterRequest) from a choice that passed
// ValidateRankChoice; leaves it unset for the server's default.
template <typename Request>
void SetRankSelector(const RankChoice& choice, Request& request) {
  if (choice.rank.has_value()) {
    request.set_rank(*choice.rank);
  } else if (!choice.profile.empty()) {
    request.set_profile(choice.profile);
  } else if (!choice.policy.empty()) {
    request.set_policy(*V1RankPolicy(choice.policy));
  }
}

struct Prediction {
  int64_t label = 0;          // argmax (0 for regression)
  std::vector<float> scores;  // softmax probabilities (classification)
  std::vector<float> logits;
  float value = 0;  // regression: logits[0]
};

struct ServerTimings {  // dylora.v1 only; KServe has no field for them
  double queue_seconds = 0;
  double compute_seconds = 0;
  double total_seconds = 0;
  int64_t batch_size = 0;
};

struct ClassifyResult {
  int64_t adapter_version = 0;
  int64_t rank = 0;
  std::string rank_source;     // "rank", "profile:<name>", "policy:<name>"
  std::string execution_path;  // "truncated", "merged"
  bool regression = false;
  std::vector<Prediction> predictions;  // one per text, in order
  std::optional<ServerTimings> timings;
  double client_seconds = 0;  // round trip measured here
};

// Thread-safe (borrows the connection, which must outlive it).
class Classifier {
 public:
  Classifier(const Connection& connection, Protocol protocol)
      : connection_(connection), protocol_(protocol) {}

  // The RPC's status (see Connection::Check) when it fails; DATA_LOSS when
  // the server's answer does not have the promised shape.
  absl::StatusOr<ClassifyResult> Classify(const std::string& adapter,
                                          const std::vector<TextItem>& texts,
                                          const RankChoice& rank) const;

  Protocol protocol() const { return protocol_; }

 private:
  absl::StatusOr<ClassifyResult> ClassifyV1(const std::string& adapter,
                                            const std::vector<TextItem>& texts,
                                            const RankChoice& rank) const;
  absl::StatusOr<ClassifyResult> ClassifyKServe(
      const std::string& adapter, const std::vector<TextItem>& texts,
      const RankChoice& rank) const;

  const Connection& connection_;
  const Protocol protocol_;
};

}  // namespace dylora::client
