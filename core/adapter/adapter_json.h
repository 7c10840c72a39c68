// adapter_config.json <-> AdapterConfig + RankMetrics (see adapter_io.h for
// the layout). Internal to core/adapter; exposed for tests.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/adapter/adapter.h"

namespace dylora {

// The "dylora" object's format_version this build writes and reads.
inline constexpr int kAdapterFormatVersion = 1;

struct ParsedAdapterConfig {
  AdapterConfig config;  // family is not in the JSON (tensor names carry it)
  RankMetrics metrics;
  int64_t r = 0;          // PEFT r
  double lora_alpha = 0;  // PEFT lora_alpha
  bool has_dylora = false;
};

// `rank` is the PEFT r to write; `with_dylora` adds the "dylora" object.
std::string AdapterConfigToJson(const AdapterConfig& config,
                                const RankMetrics& metrics, int64_t rank,
                                bool with_dylora);

// Strict parse; errors start with `origin` and name the field.
absl::StatusOr<ParsedAdapterConfig> ParseAdapterConfigJson(
    absl::string_view text, absl::string_view origin);

}  // namespace dylora
