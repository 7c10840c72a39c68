// A console reporter that, after the usual table, prints every benchmark's
// time as a ratio to its group's baseline measured in the same run.
// Benchmarks are named "<group>/<variant>"; the baseline of a group is the
// variant named `baseline_variant` (e.g. "linear/batch:32/base").
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dylora::bench {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  explicit RatioReporter(std::string baseline_variant)
      : baseline_variant_(std::move(baseline_variant)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      const std::string name = run.benchmark_name();
      times_.emplace_back(name, run.GetAdjustedRealTime());
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::map<std::string, double> baselines;
    for (const auto& [name, time] : times_) {
      const auto [group, variant] = Split(name);
      if (variant == baseline_variant_) baselines[group] = time;
    }
    std::printf("\nRatios to '%s' in the same run (time / baseline time):\n",
                baseline_variant_.c_str());
    for (const auto& [name, time] : times_) {
      const auto [group, variant] = Split(name);
      auto it = baselines.find(group);
      if (it == baselines.end() || it->second <= 0) continue;
      std::printf("  %-48s %7.3fx\n", name.c_str(), time / it->second);
    }
  }

 private:
  static std::pair<std::string, std::string> Split(const std::string& name) {
    // Google Benchmark may append "/real_time" etc.; the variant is the last
    // component we named, so strip known suffixes first.
    std::string trimmed = name;
    for (const char* suffix : {"/real_time", "/manual_time"}) {
      const std::string s(suffix);
      if (trimmed.size() > s.size() &&
          trimmed.compare(trimmed.size() - s.size(), s.size(), s) == 0) {
        trimmed.resize(trimmed.size() - s.size());
      }
    }
    const size_t slash = trimmed.rfind('/');
    if (slash == std::string::npos) return {"", trimmed};
    return {trimmed.substr(0, slash), trimmed.substr(slash + 1)};
  }

  std::string baseline_variant_;
  std::vector<std::pair<std::string, double>> times_;
};

}  // namespace dylora::bench
