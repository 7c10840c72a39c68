// p_B, the distribution DyLoRA training draws one rank per step from
// (spec: "Training", step 1).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora {

// The shape of p_B, independent of the rank range. Text forms: "uniform" and
// "geometric:<p>" with 0 < p <= 1, where P(b) is proportional to
// p (1 - p)^(b - r_min) (favours low ranks). Plain value, copyable.
class RankDistribution {
 public:
  enum class Kind { kUniform, kGeometric };

  static RankDistribution Uniform() {
    return RankDistribution(Kind::kUniform, 0);
  }
  static absl::StatusOr<RankDistribution> Geometric(double p);
  // Parses the text form; errors name the text and what was expected.
  static absl::StatusOr<RankDistribution> Parse(absl::string_view text);

  Kind kind() const { return kind_; }
  double p() const { return p_; }  // geometric only
  // "uniform" or "geometric:<p>" (round-trips through Parse).
  std::string ToString() const;

  // P(b) for b = r_min..r_max, normalised to sum to 1. Requires
  // 1 <= r_min <= r_max.
  absl::StatusOr<std::vector<double>> Probabilities(int64_t r_min,
                                                    int64_t r_max) const;

  friend bool operator==(const RankDistribution&,
                         const RankDistribution&) = default;

 private:
  RankDistribution(Kind kind, double p) : kind_(kind), p_(p) {}
  Kind kind_;
  double p_;
};

// Draws ranks from p_B over [r_min, r_max]. The same seed gives the same
// sequence on every platform (mt19937_64 + inverse CDF; no
// std::discrete_distribution, whose algorithm is implementation-defined).
// Not thread-safe: one sampler per training loop.
class RankSampler {
 public:
  static absl::StatusOr<RankSampler> Create(const RankDistribution& dist,
                                            int64_t r_min, int64_t r_max,
                                            uint64_t seed);
  int64_t Sample();
  int64_t r_min() const { return r_min_; }
  int64_t r_max() const { return r_max_; }
  // Cumulative probabilities, one per rank (last is 1).
  const std::vector<double>& cdf() const { return cdf_; }

 private:
  RankSampler(int64_t r_min, int64_t r_max, std::vector<double> cdf,
              uint64_t seed)
      : r_min_(r_min), r_max_(r_max), cdf_(std::move(cdf)), rng_(seed) {}
  int64_t r_min_;
  int64_t r_max_;
  std::vector<double> cdf_;
  std::mt19937_64 rng_;
};

}  // namespace dylora
