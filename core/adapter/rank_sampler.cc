#include "core/adapter/rank_sampler.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace dylora {

absl::StatusOr<RankDistribution> RankDistribution::Geometric(double p) {
  if (!(p > 0.0 && p <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("geometric rank distribution needs 0 < p <= 1, got ", p));
  }
  return RankDistribution(Kind::kGeometric, p);
}

absl::StatusOr<RankDistribution> RankDistribution::Parse(
    absl::string_view text) {
  if (text == "uniform") return Uniform();
  constexpr absl::string_view kGeometric = "geometric:";
  if (absl::StartsWith(text, kGeometric)) {
    absl::string_view number = text.substr(kGeometric.size());
    double p = 0;
    if (!absl::SimpleAtod(number, &p)) {
      return absl::InvalidArgumentError(absl::StrCat("rank distribution \"",
                                                     text, "\": \"", number,
                                                     "\" is not a number"));
    }
    return Geometric(p);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("rank distribution \"", text,
                   "\" is neither \"uniform\" nor \"geometric:<p>\""));
}

std::string RankDistribution::ToString() const {
  if (kind_ == Kind::kUniform) return "uniform";
  return absl::StrCat("geometric:", p_);  // %g-like, shortest round-trip
}

absl::StatusOr<std::vector<double>> RankDistribution::Probabilities(
    int64_t r_min, int64_t r_max) const {
  if (r_min < 1 || r_max < r_min) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank range [", r_min, ", ", r_max, "] is empty or below 1"));
  }
  std::vector<double> probs;
  probs.reserve(r_max - r_min + 1);
  double total = 0;
  for (int64_t b = r_min; b <= r_max; ++b) {
    const double w =
        kind_ == Kind::kUniform
            ? 1.0
            : p_ * std::pow(1.0 - p_, static_cast<double>(b - r_min));
    probs.push_back(w);
    total += w;
  }
  for (double& w : probs) w /= total;
  return probs;
}

absl::StatusOr<RankSampler> RankSampler::Create(const RankDistribution& dist,
                                                int64_t r_min, int64_t r_max,
                                                uint64_t seed) {
  DYLORA_ASSIGN_OR_RETURN(std::vector<double> probs,
                          dist.Probabilities(r_min, r_max));
  std::vector<double> cdf;
  cdf.reserve(probs.size());
  double acc = 0;
  for (double w : probs) cdf.push_back(acc += w);
  cdf.back() = 1.0;  // no rounding gap at the top
  return RankSampler(r_min, r_max, std::move(cdf), seed);
}

int64_t RankSampler::Sample() {
  // 53 random bits -> uniform double in [0, 1).
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  for (size_t i = 0; i < cdf_.size(); ++i) {
    if (u < cdf_[i]) return r_min_ + static_cast<int64_t>(i);
  }
  return r_max_;
}

}  // namespace dylora
