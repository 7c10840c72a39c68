#include "core/model/linear_hook.h"

#include "absl/strings/str_cat.h"

namespace dylora {

absl::string_view LinearKindName(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQuery:
      return "query";
    case LinearKind::kKey:
      return "key";
    case LinearKind::kValue:
      return "value";
    case LinearKind::kAttentionOutput:
      return "attention.output";
    case LinearKind::kIntermediate:
      return "intermediate";
    case LinearKind::kOutput:
      return "output";
  }
  return "unknown";
}

namespace {

// The module path inside one encoder layer, as Hugging Face names it.
absl::string_view LayerModuleSuffix(LinearKind kind) {
  switch (kind) {
    case LinearKind::kQuery:
      return "attention.self.query";
    case LinearKind::kKey:
      return "attention.self.key";
    case LinearKind::kValue:
      return "attention.self.value";
    case LinearKind::kAttentionOutput:
      return "attention.output.dense";
    case LinearKind::kIntermediate:
      return "intermediate.dense";
    case LinearKind::kOutput:
      return "output.dense";
  }
  return "unknown";
}

}  // namespace

std::string LinearId::ModulePath() const {
  return absl::StrCat("encoder.layer.", layer, ".", LayerModuleSuffix(kind));
}

}  // namespace dylora
