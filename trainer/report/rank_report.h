// The rank-vs-metric table in the forms people and programs read: a text
// table for the terminal, CSV, JSON, and an SVG line plot (metric vs rank,
// one line per series, e.g. DyLoRA and LoRA truncated to lower ranks).
#pragma once

#include <string>
#include <vector>

#include "core/adapter/adapter.h"

namespace dylora {

struct RankSeries {
  std::string label;  // "DyLoRA", "LoRA r=8 truncated", ...
  RankMetrics metrics;
};

// Ranks down, one column per series; marks the recommended ranks of the
// first series.
std::string RankTableText(const std::vector<RankSeries>& series);
// rank,<label1>,<label2>,... (empty cell where a series lacks a rank).
std::string RankTableCsv(const std::vector<RankSeries>& series);
// {"metric":..., "series":[{"label":..., "values":[{"rank":r,"value":v}],
//  "best_rank":..., "smallest_rank_within_tolerance":..., "tolerance":...}]}
std::string RankTableJson(const std::vector<RankSeries>& series);
// A self-contained SVG document (no scripts, no external resources).
std::string RankPlotSvg(const std::vector<RankSeries>& series,
                        const std::string& title);

}  // namespace dylora
