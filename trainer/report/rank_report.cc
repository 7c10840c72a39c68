#include "trainer/report/rank_report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"

namespace dylora {
namespace {

std::set<int64_t> AllRanks(const std::vector<RankSeries>& series) {
  std::set<int64_t> ranks;
  for (const RankSeries& s : series) {
    for (const auto& [rank, value] : s.metrics.values) ranks.insert(rank);
  }
  return ranks;
}

std::map<int64_t, double> ByRank(const RankMetrics& metrics) {
  return std::map<int64_t, double>(metrics.values.begin(), metrics.values.end());
}

std::string XmlEscape(const std::string& text) {
  return absl::StrReplaceAll(text, {{"&", "&amp;"},
                                    {"<", "&lt;"},
                                    {">", "&gt;"},
                                    {"\"", "&quot;"}});
}

}  // namespace

std::string RankTableText(const std::vector<RankSeries>& series) {
  if (series.empty()) return "";
  std::string out = absl::StrFormat("%-6s", "rank");
  for (const RankSeries& s : series) {
    absl::StrAppend(&out, absl::StrFormat("  %22s", s.label));
  }
  absl::StrAppend(&out, "\n");
  std::vector<std::map<int64_t, double>> columns;
  for (const RankSeries& s : series) columns.push_back(ByRank(s.metrics));
  const RankMetrics& first = series.front().metrics;
  for (int64_t rank : AllRanks(series)) {
    absl::StrAppend(&out, absl::StrFormat("%-6d", rank));
    for (const auto& column : columns) {
      auto it = column.find(rank);
      absl::StrAppend(&out, it == column.end()
                                ? absl::StrFormat("  %22s", "-")
                                : absl::StrFormat("  %22.4f", it->second));
    }
    std::string marks;
    if (first.best_rank == rank) marks += "  <- best";
    if (first.smallest_rank_within_tolerance == rank) {
      absl::StrAppend(&marks, "  <- smallest within ", first.tolerance);
    }
    absl::StrAppend(&out, marks, "\n");
  }
  absl::StrAppend(&out, "metric: ", first.metric, "\n");
  return out;
}

std::string RankTableCsv(const std::vector<RankSeries>& series) {
  std::string out = "rank";
  for (const RankSeries& s : series) {
    absl::StrAppend(&out, ",", absl::StrReplaceAll(s.label, {{",", ";"}}));
  }
  absl::StrAppend(&out, "\n");
  std::vector<std::map<int64_t, double>> columns;
  for (const RankSeries& s : series) columns.push_back(ByRank(s.metrics));
  for (int64_t rank : AllRanks(series)) {
    absl::StrAppend(&out, rank);
    for (const auto& column : columns) {
      auto it = column.find(rank);
      absl::StrAppend(&out, ",",
                      it == column.end() ? "" : absl::StrFormat("%.6f", it->second));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

std::string RankTableJson(const std::vector<RankSeries>& series) {
  nlohmann::json out = nlohmann::json::object();
  out["metric"] = series.empty() ? "" : series.front().metrics.metric;
  out["series"] = nlohmann::json::array();
  for (const RankSeries& s : series) {
    nlohmann::json entry = {{"label", s.label},
                            {"values", nlohmann::json::array()},
                            {"tolerance", s.metrics.tolerance}};
    for (const auto& [rank, value] : s.metrics.values) {
      entry["values"].push_back({{"rank", rank}, {"value", value}});
    }
    if (s.metrics.best_rank) entry["best_rank"] = *s.metrics.best_rank;
    if (s.metrics.smallest_rank_within_tolerance) {
      entry["smallest_rank_within_tolerance"] =
          *s.metrics.smallest_rank_within_tolerance;
    }
    out["series"].push_back(std::move(entry));
  }
  return out.dump(2) + "\n";
}

std::string RankPlotSvg(const std::vector<RankSeries>& series,
                        const std::string& title) {
  constexpr double kWidth = 640, kHeight = 400;
  constexpr double kLeft = 70, kRight = 170, kTop = 40, kBottom = 50;
  const std::set<int64_t> ranks = AllRanks(series);
  double lo = INFINITY, hi = -INFINITY;
  for (const RankSeries& s : series) {
    for (const auto& [rank, value] : s.metrics.values) {
      lo = std::min(lo, value);
      hi = std::max(hi, value);
    }
  }
  if (ranks.empty()) {
    lo = 0;
    hi = 1;
  }
  if (hi - lo < 1e-9) {
    lo -= 0.05;
    hi += 0.05;
  }
  const double pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const int64_t r0 = ranks.empty() ? 1 : *ranks.begin();
  const int64_t r1 = ranks.empty() ? 2 : std::max(*ranks.rbegin(), r0 + 1);
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  auto x = [&](double rank) { return kLeft + (rank - r0) / (r1 - r0) * plot_w; };
  auto y = [&](double v) { return kTop + (hi - v) / (hi - lo) * plot_h; };
  static constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                            "#9467bd", "#ff7f0e", "#8c564b"};
  const std::string metric = series.empty() ? "" : series.front().metrics.metric;

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%g\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
      kWidth, kHeight, kWidth, kHeight, kLeft + plot_w / 2, XmlEscape(title));
  // Axes, grid and ticks.
  absl::StrAppend(&svg, absl::StrFormat(
      "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
      "stroke=\"#333\"/>\n", kLeft, kTop, plot_w, plot_h));
  for (int64_t r = r0; r <= r1; ++r) {
    absl::StrAppend(&svg, absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#eee\"/>"
        "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%d</text>\n",
        x(r), kTop, x(r), kTop + plot_h, x(r), kTop + plot_h + 18, r));
  }
  for (int i = 0; i <= 5; ++i) {
    const double v = lo + (hi - lo) * i / 5.0;
    absl::StrAppend(&svg, absl::StrFormat(
        "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#eee\"/>"
        "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n",
        kLeft, y(v), kLeft + plot_w, y(v), kLeft - 6, y(v) + 4, v));
  }
  absl::StrAppend(&svg, absl::StrFormat(
      "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">rank</text>\n"
      "<text transform=\"translate(16 %g) rotate(-90)\" "
      "text-anchor=\"middle\">%s</text>\n",
      kLeft + plot_w / 2, kHeight - 10, kTop + plot_h / 2, XmlEscape(metric)));
  // One polyline with markers per series, and a legend.
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % std::size(kColors)];
    std::string points;
    std::string markers;
    for (const auto& [rank, value] : series[i].metrics.values) {
      absl::StrAppend(&points, absl::StrFormat("%.1f,%.1f ", x(rank), y(value)));
      absl::StrAppend(&markers, absl::StrFormat(
          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>", x(rank),
          y(value), color));
    }
    absl::StrAppend(&svg, absl::StrFormat(
        "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" "
        "stroke-width=\"2\"/>%s\n", points, color, markers));
    const double ly = kTop + 10 + 20 * i;
    absl::StrAppend(&svg, absl::StrFormat(
        "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" "
        "stroke-width=\"2\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
        kWidth - kRight + 12, ly, kWidth - kRight + 32, ly, color,
        kWidth - kRight + 38, ly + 4, XmlEscape(series[i].label)));
  }
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

}  // namespace dylora
