#include "core/adapter/adapter_json.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

using json = nlohmann::json;

// The PEFT target_modules entry that selects exactly one kind when used as
// a suffix (PEFT matches "name == key or name.endswith('.' + key)").
// kOutput has none ("output.dense" also matches attention.output.dense).
const char* PeftSuffix(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQuery:
      return "query";
    case LinearKind::kKey:
      return "key";
    case LinearKind::kValue:
      return "value";
    case LinearKind::kAttentionOutput:
      return "attention.output.dense";
    case LinearKind::kIntermediate:
      return "intermediate.dense";
    case LinearKind::kOutput:
      return nullptr;
  }
  return nullptr;
}

// target_modules for PEFT: a list of suffixes, or, when the FFN output is
// adapted, a regex PEFT full-matches against module names.
json PeftTargetModules(const std::vector<LinearKind>& kinds) {
  bool needs_regex = false;
  for (LinearKind k : kinds) needs_regex |= PeftSuffix(k) == nullptr;
  if (!needs_regex) {
    json list = json::array();
    for (LinearKind k : kinds) list.push_back(PeftSuffix(k));
    return list;
  }
  std::vector<std::string> alternatives;
  for (LinearKind k : kinds) {
    LinearId id{0, k};
    std::string path = id.ModulePath();  // encoder.layer.0.<suffix>
    std::string suffix = path.substr(std::string("encoder.layer.0.").size());
    std::string escaped;
    for (char c : suffix) {
      if (c == '.') escaped += "\\";
      escaped += c;
    }
    alternatives.push_back(escaped);
  }
  return absl::StrCat(
      ".*encoder\\.layer\\.\\d+\\.(?:", absl::StrJoin(alternatives, "|"), ")");
}

json Number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return static_cast<int64_t>(v);  // PEFT writes lora_alpha as an int
  }
  return v;
}

}  // namespace

std::string AdapterConfigToJson(const AdapterConfig& c,
                                const RankMetrics& metrics, int64_t rank,
                                bool with_dylora) {
  json j;
  // The fields PEFT 0.17's LoraConfig.save_pretrained writes, with its
  // defaults, so both PEFT and our loader read the file.
  j["alpha_pattern"] = json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = c.base_model_name_or_path;
  j["bias"] = "none";
  j["corda_config"] = nullptr;
  j["eva_config"] = nullptr;
  j["exclude_modules"] = nullptr;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["loftq_config"] = json::object();
  j["lora_alpha"] = Number(c.alpha);
  j["lora_bias"] = false;
  j["lora_dropout"] = 0.0;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = json::array({"classifier"});
  j["peft_type"] = "LORA";
  j["qalora_group_size"] = 16;
  j["r"] = rank;
  j["rank_pattern"] = json::object();
  j["revision"] = nullptr;
  j["target_modules"] = PeftTargetModules(c.target_kinds);
  j["target_parameters"] = nullptr;
  j["task_type"] = c.task_type;
  j["trainable_token_indices"] = nullptr;
  j["use_dora"] = false;
  j["use_qalora"] = false;
  j["use_rslora"] = false;
  if (with_dylora) {
    json d;
    d["format_version"] = kAdapterFormatVersion;
    d["r_min"] = c.r_min;
    d["r_max"] = c.r_max;
    d["alpha"] = c.alpha;
    json targets = json::array();
    for (LinearKind k : c.target_kinds) {
      targets.push_back(std::string(LinearKindName(k)));
    }
    d["target_modules"] = targets;
    d["rank_distribution"] = c.rank_distribution.ToString();
    d["update_mode"] = std::string(UpdateModeName(c.update_mode));
    if (c.head) d["head"] = std::string(HeadKindName(*c.head));
    d["base_model_fingerprint"] = c.base_model_fingerprint;
    json table = json::array();
    for (const auto& [r, v] : metrics.values) {
      table.push_back({{"rank", r}, {"value", v}});
    }
    d["rank_metrics"] = {{"metric", metrics.metric},
                         {"higher_is_better", metrics.higher_is_better},
                         {"values", table}};
    json rec = {{"tolerance", metrics.tolerance}};
    rec["best"] = metrics.best_rank ? json(*metrics.best_rank) : json(nullptr);
    rec["smallest_within_tolerance"] =
        metrics.smallest_rank_within_tolerance
            ? json(*metrics.smallest_rank_within_tolerance)
            : json(nullptr);
    d["recommended_ranks"] = rec;
    j["dylora"] = d;
  }
  return j.dump(2) + "\n";
}

namespace {

// Field readers: each names origin and the dotted field path on error.
class Reader {
 public:
  explicit Reader(absl::string_view origin) : origin_(origin) {}

  absl::Status Error(absl::string_view field, absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(origin_, ": field \"", field, "\" ", problem));
  }
  absl::StatusOr<const json*> Get(const json& obj, const char* key,
                                  absl::string_view path, bool required) const {
    auto it = obj.find(key);
    if (it == obj.end() || (!required && it->is_null())) {
      if (required) return Error(path, "is missing");
      return nullptr;
    }
    return &*it;
  }
  absl::StatusOr<int64_t> Int(const json& v, absl::string_view path) const {
    if (v.is_number_integer() || v.is_number_unsigned()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX) {
        return Error(path, "is out of range");
      }
      return v.get<int64_t>();
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d == std::floor(d) && std::fabs(d) < 1e15)
        return static_cast<int64_t>(d);
    }
    return Error(path, "must be an integer");
  }
  absl::StatusOr<double> Double(const json& v, absl::string_view path) const {
    if (!v.is_number()) return Error(path, "must be a number");
    return v.get<double>();
  }
  absl::StatusOr<std::string> String(const json& v,
                                     absl::string_view path) const {
    if (!v.is_string()) return Error(path, "must be a string");
    return v.get<std::string>();
  }

 private:
  std::string origin_;
};

absl::StatusOr<std::vector<LinearKind>> PeftKinds(const json& targets,
                                                  const Reader& rd) {
  // Only the list form is interpreted here; the tensors decide in the end.
  std::vector<LinearKind> kinds;
  if (!targets.is_array()) return kinds;
  for (const json& t : targets) {
    if (!t.is_string()) return rd.Error("target_modules", "must hold strings");
    const std::string s = t.get<std::string>();
    for (LinearKind k :
         {LinearKind::kQuery, LinearKind::kKey, LinearKind::kValue,
          LinearKind::kAttentionOutput, LinearKind::kIntermediate}) {
      if (s == PeftSuffix(k) || s == LinearKindName(k)) kinds.push_back(k);
    }
  }
  return kinds;
}

}  // namespace

absl::StatusOr<ParsedAdapterConfig> ParseAdapterConfigJson(
    absl::string_view text, absl::string_view origin) {
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not valid JSON"));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": top level must be a JSON object"));
  }
  Reader rd(origin);
  ParsedAdapterConfig out;
  AdapterConfig& c = out.config;
  try {
    DYLORA_ASSIGN_OR_RETURN(const json* peft_type,
                            rd.Get(j, "peft_type", "peft_type", true));
    DYLORA_ASSIGN_OR_RETURN(std::string type,
                            rd.String(*peft_type, "peft_type"));
    if (type != "LORA") {
      return rd.Error(
          "peft_type",
          absl::StrCat("is \"", type, "\"; only \"LORA\" is supported"));
    }
    DYLORA_ASSIGN_OR_RETURN(const json* r, rd.Get(j, "r", "r", true));
    DYLORA_ASSIGN_OR_RETURN(out.r, rd.Int(*r, "r"));
    if (out.r < 1)
      return rd.Error("r", absl::StrCat("must be >= 1, got ", out.r));
    DYLORA_ASSIGN_OR_RETURN(const json* alpha,
                            rd.Get(j, "lora_alpha", "lora_alpha", true));
    DYLORA_ASSIGN_OR_RETURN(out.lora_alpha, rd.Double(*alpha, "lora_alpha"));
    if (!(out.lora_alpha > 0) || !std::isfinite(out.lora_alpha)) {
      return rd.Error("lora_alpha",
                      absl::StrCat("must be positive, got ", out.lora_alpha));
    }
    // Variants whose math we do not implement are refused, not misread.
    for (const char* flag : {"use_rslora", "use_dora", "fan_in_fan_out",
                             "lora_bias", "use_qalora"}) {
      DYLORA_ASSIGN_OR_RETURN(const json* v, rd.Get(j, flag, flag, false));
      if (v != nullptr && !(v->is_boolean() && !v->get<bool>())) {
        return rd.Error(flag, "must be false (not supported)");
      }
    }
    for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
      DYLORA_ASSIGN_OR_RETURN(const json* v,
                              rd.Get(j, pattern, pattern, false));
      if (v != nullptr && !(v->is_object() && v->empty())) {
        return rd.Error(pattern,
                        "must be empty (per-module ranks unsupported)");
      }
    }
    DYLORA_ASSIGN_OR_RETURN(const json* bias, rd.Get(j, "bias", "bias", false));
    if (bias != nullptr &&
        !(bias->is_string() && bias->get<std::string>() == "none")) {
      return rd.Error("bias", "must be \"none\"");
    }
    DYLORA_ASSIGN_OR_RETURN(
        const json* base,
        rd.Get(j, "base_model_name_or_path", "base_model_name_or_path", false));
    if (base != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(c.base_model_name_or_path,
                              rd.String(*base, "base_model_name_or_path"));
    }
    DYLORA_ASSIGN_OR_RETURN(const json* task,
                            rd.Get(j, "task_type", "task_type", false));
    if (task != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(c.task_type, rd.String(*task, "task_type"));
    }
    DYLORA_ASSIGN_OR_RETURN(
        const json* targets,
        rd.Get(j, "target_modules", "target_modules", false));
    if (targets != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(c.target_kinds, PeftKinds(*targets, rd));
    } else {
      c.target_kinds.clear();
    }
    c.alpha = out.lora_alpha;
    c.r_min = c.r_max = out.r;

    DYLORA_ASSIGN_OR_RETURN(const json* d,
                            rd.Get(j, "dylora", "dylora", false));
    if (d == nullptr) return out;
    if (!d->is_object()) return rd.Error("dylora", "must be an object");
    out.has_dylora = true;
    DYLORA_ASSIGN_OR_RETURN(
        const json* version,
        rd.Get(*d, "format_version", "dylora.format_version", true));
    DYLORA_ASSIGN_OR_RETURN(int64_t v,
                            rd.Int(*version, "dylora.format_version"));
    if (v != kAdapterFormatVersion) {
      return rd.Error("dylora.format_version",
                      absl::StrCat("is ", v, "; this build reads version ",
                                   kAdapterFormatVersion));
    }
    DYLORA_ASSIGN_OR_RETURN(const json* r_min,
                            rd.Get(*d, "r_min", "dylora.r_min", true));
    DYLORA_ASSIGN_OR_RETURN(c.r_min, rd.Int(*r_min, "dylora.r_min"));
    DYLORA_ASSIGN_OR_RETURN(const json* r_max,
                            rd.Get(*d, "r_max", "dylora.r_max", true));
    DYLORA_ASSIGN_OR_RETURN(c.r_max, rd.Int(*r_max, "dylora.r_max"));
    if (c.r_min < 1 || c.r_max < c.r_min) {
      return rd.Error("dylora.r_min",
                      absl::StrCat("range [", c.r_min, ", ", c.r_max,
                                   "] is empty or below 1"));
    }
    if (c.r_max != out.r) {
      return rd.Error("dylora.r_max",
                      absl::StrCat("is ", c.r_max, " but r is ", out.r));
    }
    DYLORA_ASSIGN_OR_RETURN(const json* a,
                            rd.Get(*d, "alpha", "dylora.alpha", true));
    DYLORA_ASSIGN_OR_RETURN(c.alpha, rd.Double(*a, "dylora.alpha"));
    if (c.alpha != out.lora_alpha) {
      return rd.Error(
          "dylora.alpha",
          absl::StrCat("is ", c.alpha, " but lora_alpha is ", out.lora_alpha));
    }
    DYLORA_ASSIGN_OR_RETURN(
        const json* t,
        rd.Get(*d, "target_modules", "dylora.target_modules", true));
    if (!t->is_array() || t->empty()) {
      return rd.Error("dylora.target_modules", "must be a non-empty list");
    }
    c.target_kinds.clear();
    for (const json& name : *t) {
      DYLORA_ASSIGN_OR_RETURN(std::string s,
                              rd.String(name, "dylora.target_modules"));
      auto kind = ParseLinearKind(s);
      if (!kind.ok())
        return rd.Error("dylora.target_modules", kind.status().message());
      c.target_kinds.push_back(*kind);
    }
    DYLORA_ASSIGN_OR_RETURN(
        const json* dist,
        rd.Get(*d, "rank_distribution", "dylora.rank_distribution", false));
    if (dist != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(std::string s,
                              rd.String(*dist, "dylora.rank_distribution"));
      auto parsed = RankDistribution::Parse(s);
      if (!parsed.ok())
        return rd.Error("dylora.rank_distribution", parsed.status().message());
      c.rank_distribution = *parsed;
    }
    DYLORA_ASSIGN_OR_RETURN(
        const json* mode,
        rd.Get(*d, "update_mode", "dylora.update_mode", false));
    if (mode != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(std::string s,
                              rd.String(*mode, "dylora.update_mode"));
      auto parsed = ParseUpdateMode(s);
      if (!parsed.ok())
        return rd.Error("dylora.update_mode", parsed.status().message());
      c.update_mode = *parsed;
    }
    DYLORA_ASSIGN_OR_RETURN(const json* head,
                            rd.Get(*d, "head", "dylora.head", false));
    if (head != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(std::string s, rd.String(*head, "dylora.head"));
      auto parsed = ParseHeadKind(s);
      if (!parsed.ok())
        return rd.Error("dylora.head", parsed.status().message());
      c.head = *parsed;
    }
    DYLORA_ASSIGN_OR_RETURN(const json* fp,
                            rd.Get(*d, "base_model_fingerprint",
                                   "dylora.base_model_fingerprint", false));
    if (fp != nullptr) {
      DYLORA_ASSIGN_OR_RETURN(c.base_model_fingerprint,
                              rd.String(*fp, "dylora.base_model_fingerprint"));
    }
    auto in_range = [&](int64_t rank, absl::string_view field) -> absl::Status {
      if (rank < c.r_min || rank > c.r_max) {
        return rd.Error(field, absl::StrCat("rank ", rank, " is outside [",
                                            c.r_min, ", ", c.r_max, "]"));
      }
      return absl::OkStatus();
    };
    RankMetrics& m = out.metrics;
    DYLORA_ASSIGN_OR_RETURN(
        const json* table,
        rd.Get(*d, "rank_metrics", "dylora.rank_metrics", false));
    if (table != nullptr) {
      if (!table->is_object())
        return rd.Error("dylora.rank_metrics", "must be an object");
      DYLORA_ASSIGN_OR_RETURN(
          const json* name,
          rd.Get(*table, "metric", "dylora.rank_metrics.metric", false));
      if (name != nullptr) {
        DYLORA_ASSIGN_OR_RETURN(m.metric,
                                rd.String(*name, "dylora.rank_metrics.metric"));
      }
      DYLORA_ASSIGN_OR_RETURN(
          const json* hib,
          rd.Get(*table, "higher_is_better",
                 "dylora.rank_metrics.higher_is_better", false));
      if (hib != nullptr) {
        if (!hib->is_boolean()) {
          return rd.Error("dylora.rank_metrics.higher_is_better",
                          "must be a boolean");
        }
        m.higher_is_better = hib->get<bool>();
      }
      DYLORA_ASSIGN_OR_RETURN(
          const json* values,
          rd.Get(*table, "values", "dylora.rank_metrics.values", false));
      if (values != nullptr) {
        if (!values->is_array()) {
          return rd.Error("dylora.rank_metrics.values", "must be a list");
        }
        std::set<int64_t> seen;
        for (const json& e : *values) {
          const char* path = "dylora.rank_metrics.values[]";
          if (!e.is_object())
            return rd.Error(path, "must hold {rank, value} objects");
          DYLORA_ASSIGN_OR_RETURN(const json* rk,
                                  rd.Get(e, "rank", path, true));
          DYLORA_ASSIGN_OR_RETURN(int64_t rank, rd.Int(*rk, path));
          DYLORA_RETURN_IF_ERROR(in_range(rank, path));
          if (!seen.insert(rank).second) {
            return rd.Error(path, absl::StrCat("lists rank ", rank, " twice"));
          }
          DYLORA_ASSIGN_OR_RETURN(const json* val,
                                  rd.Get(e, "value", path, true));
          DYLORA_ASSIGN_OR_RETURN(double value, rd.Double(*val, path));
          m.values.push_back({rank, value});
        }
      }
    }
    DYLORA_ASSIGN_OR_RETURN(
        const json* rec,
        rd.Get(*d, "recommended_ranks", "dylora.recommended_ranks", false));
    if (rec != nullptr) {
      if (!rec->is_object())
        return rd.Error("dylora.recommended_ranks", "must be an object");
      DYLORA_ASSIGN_OR_RETURN(
          const json* tol, rd.Get(*rec, "tolerance",
                                  "dylora.recommended_ranks.tolerance", false));
      if (tol != nullptr) {
        DYLORA_ASSIGN_OR_RETURN(
            m.tolerance, rd.Double(*tol, "dylora.recommended_ranks.tolerance"));
      }
      for (auto [key, slot] :
           {std::pair<const char*, std::optional<int64_t>*>{"best",
                                                            &m.best_rank},
            {"smallest_within_tolerance", &m.smallest_rank_within_tolerance}}) {
        const std::string path = absl::StrCat("dylora.recommended_ranks.", key);
        DYLORA_ASSIGN_OR_RETURN(const json* v, rd.Get(*rec, key, path, false));
        if (v == nullptr) continue;
        DYLORA_ASSIGN_OR_RETURN(int64_t rank, rd.Int(*v, path));
        DYLORA_RETURN_IF_ERROR(in_range(rank, path));
        *slot = rank;
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", e.what()));
  }
  return out;
}

}  // namespace dylora
