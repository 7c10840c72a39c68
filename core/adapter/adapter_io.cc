#include "core/adapter/adapter_io.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/adapter/adapter_json.h"
#include "core/io/torch_tensors.h"
#include "core/model/encoder.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kPeftRoot = "base_model.model.";
constexpr LinearKind kKinds[] = {
    LinearKind::kQuery,        LinearKind::kKey,
    LinearKind::kValue,        LinearKind::kAttentionOutput,
    LinearKind::kIntermediate, LinearKind::kOutput};

absl::string_view FamilyModule(EncoderFamily family) {
  return family == EncoderFamily::kRoberta ? "roberta" : "bert";
}

std::string LoraName(EncoderFamily family, const LinearId& id, char ab) {
  return absl::StrCat(PeftBackbonePrefix(family), id.ModulePath(), ".lora_",
                      std::string(1, ab), ".weight");
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SerializeAdapter(const DyLoraAdapter& adapter, int64_t rank, bool full) {
  const AdapterConfig& c = adapter.config();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  DYLORA_RETURN_IF_ERROR(CallTorch("adapter export", [&] {
    for (const auto& [id, f] : adapter.factors()) {
      tensors.push_back({LoraName(c.family, id, 'A'),
                         f.down.detach().narrow(0, 0, rank).contiguous()});
      tensors.push_back({LoraName(c.family, id, 'B'),
                         f.up.detach().narrow(1, 0, rank).contiguous()});
    }
    // Head tensors sorted by name (as PEFT writes them), so a loaded and
    // re-saved adapter is byte-identical.
    std::map<std::string, at::Tensor> head(adapter.head().begin(),
                                           adapter.head().end());
    for (const auto& [name, t] : head) {
      tensors.push_back({absl::StrCat(kPeftRoot, name), t.detach()});
    }
  }));
  DYLORA_ASSIGN_OR_RETURN(std::string weights,
                          SerializeTensors(tensors, {{"format", "pt"}}));
  std::string config;
  if (full) {
    config = AdapterConfigToJson(c, adapter.rank_metrics(), rank, true);
  } else {
    // A slice is a one-rank adapter: its "dylora" section (which PEFT
    // ignores) keeps what plain PEFT fields cannot say, the head kind and
    // the backbone fingerprint, so dylora-serve reads the slice back with
    // the head it was trained with.
    AdapterConfig slice = c;
    slice.r_min = slice.r_max = rank;
    RankMetrics metrics = adapter.rank_metrics();
    std::erase_if(metrics.values,
                  [rank](const auto& entry) { return entry.first != rank; });
    metrics.best_rank.reset();
    metrics.smallest_rank_within_tolerance.reset();
    if (!metrics.values.empty()) metrics.Recommend(metrics.tolerance);
    config = AdapterConfigToJson(slice, metrics, rank, true);
  }
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back(kAdapterWeightsFile, std::move(weights));
  files.emplace_back(kAdapterConfigFile, std::move(config));
  return files;
}

absl::Status WriteAdapter(const DyLoraAdapter& adapter, int64_t rank, bool full,
                          const std::string& dir) {
  DYLORA_ASSIGN_OR_RETURN(auto files, SerializeAdapter(adapter, rank, full));
  return WriteDirectoryAtomically(dir, files);
}

// One parsed tensor name of an adapter file.
struct ParsedName {
  bool is_head = false;
  std::string head_name;  // "classifier.weight"
  std::optional<EncoderFamily> family;
  LinearId id;
  char ab = 0;  // 'A' or 'B'
};

absl::StatusOr<ParsedName> ParseTensorName(const std::string& name,
                                           absl::string_view origin) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": tensor \"", name, "\" ", why));
  };
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, kPeftRoot)) {
    return bad(absl::StrCat("does not start with \"", kPeftRoot, "\""));
  }
  ParsedName out;
  if (absl::StartsWith(rest, "classifier.")) {
    out.is_head = true;
    out.head_name = std::string(rest);
    return out;
  }
  for (EncoderFamily f : {EncoderFamily::kBert, EncoderFamily::kRoberta}) {
    if (absl::ConsumePrefix(&rest, absl::StrCat(FamilyModule(f), "."))) {
      out.family = f;
      break;
    }
  }
  if (!out.family) {
    return bad("is neither under bert./roberta. nor part of the classifier");
  }
  if (absl::ConsumeSuffix(&rest, ".lora_A.weight")) {
    out.ab = 'A';
  } else if (absl::ConsumeSuffix(&rest, ".lora_B.weight")) {
    out.ab = 'B';
  } else {
    return bad("is not a lora_A/lora_B weight (unsupported adapter content)");
  }
  if (!absl::ConsumePrefix(&rest, "encoder.layer.")) {
    return bad("is not inside encoder.layer.<n>");
  }
  const size_t dot = rest.find('.');
  int64_t layer = -1;
  if (dot == absl::string_view::npos || dot == 0 ||
      !absl::c_all_of(rest.substr(0, dot), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(rest.substr(0, dot), &layer)) {
    return bad("has no layer number");
  }
  const absl::string_view module = rest.substr(dot + 1);
  for (LinearKind k : kKinds) {
    const std::string path = LinearId{0, k}.ModulePath();
    if (absl::string_view(path).substr(
            std::string("encoder.layer.0.").size()) == module) {
      out.id = LinearId{layer, k};
      return out;
    }
  }
  return bad(absl::StrCat("targets \"", module,
                          "\", which is not an adaptable linear"));
}

}  // namespace

std::string PeftBackbonePrefix(EncoderFamily family) {
  return absl::StrCat(kPeftRoot, FamilyModule(family), ".");
}

std::string AdapterConfigJson(const DyLoraAdapter& adapter) {
  return AdapterConfigToJson(adapter.config(), adapter.rank_metrics(),
                             adapter.config().r_max, true);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SerializeAdapterFiles(const DyLoraAdapter& adapter) {
  return SerializeAdapter(adapter, adapter.config().r_max, /*full=*/true);
}

absl::Status SaveAdapter(const DyLoraAdapter& adapter, const std::string& dir) {
  return WriteAdapter(adapter, adapter.config().r_max, /*full=*/true, dir);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SerializePeftLoraFiles(const DyLoraAdapter& adapter, int64_t rank) {
  // A plain LoRA has one rank: any b in [1, r_max] is a valid slice.
  DYLORA_RETURN_IF_ERROR(ValidateRank(rank, 1, adapter.config().r_max));
  return SerializeAdapter(adapter, rank, /*full=*/false);
}

absl::Status ExportPeftLora(const DyLoraAdapter& adapter, int64_t rank,
                            const std::string& dir) {
  DYLORA_ASSIGN_OR_RETURN(auto files, SerializePeftLoraFiles(adapter, rank));
  return WriteDirectoryAtomically(dir, files);
}

absl::StatusOr<std::unique_ptr<DyLoraAdapter>> ReadAdapter(
    const std::string& dir) {
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  const std::string weights_path =
      (fs::path(dir) / kAdapterWeightsFile).string();
  DYLORA_ASSIGN_OR_RETURN(std::string text,
                          ReadFileToString(config_path, size_t{16} << 20));
  DYLORA_ASSIGN_OR_RETURN(ParsedAdapterConfig parsed,
                          ParseAdapterConfigJson(text, config_path));
  DYLORA_ASSIGN_OR_RETURN(auto tensors, LoadTensors(weights_path));

  AdapterConfig& config = parsed.config;
  std::optional<EncoderFamily> family;
  std::map<int64_t, std::pair<LinearId, LoraFactors>> by_key;  // sorted
  DyLoraAdapter::NamedTensors head;
  for (auto& [name, tensor] : tensors) {
    DYLORA_ASSIGN_OR_RETURN(ParsedName p, ParseTensorName(name, weights_path));
    if (!at::isFloatingType(tensor.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights_path, ": tensor \"", name, "\" is not floating point"));
    }
    DYLORA_ASSIGN_OR_RETURN(at::Tensor t, CallTorch("adapter load", [&] {
                              return tensor.to(at::kFloat).contiguous();
                            }));
    // After the cast: a finite float64 beyond float32's range is Inf here.
    DYLORA_RETURN_IF_ERROR(CheckFinite(t, weights_path, name));
    if (p.is_head) {
      head.push_back({p.head_name, t});
      continue;
    }
    if (family && *family != *p.family) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights_path, ": tensors mix bert. and roberta. prefixes"));
    }
    family = p.family;
    const int64_t key = p.id.layer * 8 + static_cast<int64_t>(p.id.kind);
    auto& entry = by_key[key];
    entry.first = p.id;
    (p.ab == 'A' ? entry.second.down : entry.second.up) = t;
    // Every lora tensor must carry the config's r (r_max).
    const int64_t r = p.ab == 'A' ? t.size(0) : (t.dim() == 2 ? t.size(1) : -1);
    if (t.dim() != 2 || r != parsed.r) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor \"", name, "\" has shape [",
                       absl::StrJoin(t.sizes(), ", "),
                       "], inconsistent with r = ", parsed.r));
    }
  }
  if (by_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": holds no lora_A/lora_B tensors"));
  }
  std::vector<std::pair<LinearId, LoraFactors>> factors;
  std::set<LinearKind> kinds_in_file;
  for (auto& [key, entry] : by_key) {
    const auto& [id, f] = entry;
    if (!f.down.defined() || !f.up.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor \"",
                       LoraName(*family, id, f.down.defined() ? 'B' : 'A'),
                       "\" is missing"));
    }
    kinds_in_file.insert(id.kind);
    factors.push_back(entry);
  }
  if (parsed.has_dylora) {
    // The declared targets and the tensors must agree.
    std::set<LinearKind> declared(config.target_kinds.begin(),
                                  config.target_kinds.end());
    if (declared != kinds_in_file) {
      std::vector<std::string> names;
      for (LinearKind k : kinds_in_file) names.emplace_back(LinearKindName(k));
      return absl::InvalidArgumentError(absl::StrCat(
          config_path, ": dylora.target_modules does not match the tensors in ",
          weights_path, " (which adapt: ", absl::StrJoin(names, ", "), ")"));
    }
  } else {
    config.target_kinds.assign(kinds_in_file.begin(), kinds_in_file.end());
  }
  config.family = *family;
  auto adapter = DyLoraAdapter::FromParts(config, std::move(factors),
                                          std::move(head), parsed.metrics);
  if (!adapter.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": ", adapter.status().message()));
  }
  return adapter;
}

absl::StatusOr<std::unique_ptr<DyLoraAdapter>> LoadAdapter(
    const std::string& dir, const Encoder& encoder) {
  DYLORA_ASSIGN_OR_RETURN(auto adapter, ReadAdapter(dir));
  if (adapter->config().family != encoder.config().family) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": adapter tensors are named for a ",
        FamilyModule(adapter->config().family), " model but the backbone is ",
        FamilyModule(encoder.config().family)));
  }
  absl::Status fits = adapter->ValidateAgainst(encoder);
  if (!fits.ok()) {
    return absl::Status(fits.code(), absl::StrCat(dir, ": ", fits.message()));
  }
  return adapter;
}

}  // namespace dylora
