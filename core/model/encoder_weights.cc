#include "core/model/encoder_weights.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace dylora {

const LinearWeights& EncoderLayerWeights::linear(LinearKind kind) const {
  switch (kind) {
    case LinearKind::kQuery:
      return query;
    case LinearKind::kKey:
      return key;
    case LinearKind::kValue:
      return value;
    case LinearKind::kAttentionOutput:
      return attention_output;
    case LinearKind::kIntermediate:
      return intermediate;
    case LinearKind::kOutput:
      return output;
  }
  return query;  // unreachable: every enumerator is handled above
}

namespace {

// One tensor the config says the checkpoint must hold.
struct Slot {
  std::string name;
  std::vector<int64_t> shape;
  at::Tensor* dst;
};

// The slots of every required tensor, pointing into `w`.
std::vector<Slot> RequiredSlots(const EncoderConfig& c, EncoderWeights& w) {
  const int64_t h = c.hidden_size;
  const int64_t inter = c.intermediate_size;
  std::vector<Slot> slots = {
      {"embeddings.word_embeddings.weight",
       {c.vocab_size, h},
       &w.word_embeddings},
      {"embeddings.position_embeddings.weight",
       {c.max_position_embeddings, h},
       &w.position_embeddings},
      {"embeddings.token_type_embeddings.weight",
       {c.type_vocab_size, h},
       &w.token_type_embeddings},
      {"embeddings.LayerNorm.weight", {h}, &w.embeddings_norm.weight},
      {"embeddings.LayerNorm.bias", {h}, &w.embeddings_norm.bias},
  };
  w.layers.assign(static_cast<size_t>(c.num_hidden_layers), {});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    EncoderLayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = absl::StrCat("encoder.layer.", i, ".");
    auto linear = [&](absl::string_view module, LinearWeights& lw, int64_t out,
                      int64_t in) {
      slots.push_back(
          {absl::StrCat(p, module, ".weight"), {out, in}, &lw.weight});
      slots.push_back({absl::StrCat(p, module, ".bias"), {out}, &lw.bias});
    };
    auto norm = [&](absl::string_view module, LayerNormWeights& nw) {
      slots.push_back({absl::StrCat(p, module, ".weight"), {h}, &nw.weight});
      slots.push_back({absl::StrCat(p, module, ".bias"), {h}, &nw.bias});
    };
    linear("attention.self.query", l.query, h, h);
    linear("attention.self.key", l.key, h, h);
    linear("attention.self.value", l.value, h, h);
    linear("attention.output.dense", l.attention_output, h, h);
    norm("attention.output.LayerNorm", l.attention_norm);
    linear("intermediate.dense", l.intermediate, inter, h);
    linear("output.dense", l.output, h, inter);
    norm("output.LayerNorm", l.output_norm);
  }
  return slots;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Tensors of task heads and buffers that are not part of the backbone.
bool IsIgnored(absl::string_view name) {
  for (absl::string_view prefix :
       {"classifier.", "cls.", "lm_head.", "qa_outputs.", "pre_classifier."}) {
    if (absl::StartsWith(name, prefix)) return true;
  }
  return name == "embeddings.position_ids";
}

// Strips a "bert." / "roberta." / "<model_type>." prefix and maps the legacy
// LayerNorm.gamma/beta names to weight/bias.
std::string Canonical(absl::string_view name, const EncoderConfig& config) {
  std::string model_prefix = absl::StrCat(config.model_type, ".");
  for (absl::string_view prefix :
       {absl::string_view("bert."), absl::string_view("roberta."),
        absl::string_view(model_prefix)}) {
    if (prefix.size() > 1 && absl::StartsWith(name, prefix)) {
      name.remove_prefix(prefix.size());
      break;
    }
  }
  std::string out(name);
  if (absl::EndsWith(out, "LayerNorm.gamma")) {
    out.replace(out.size() - 5, 5, "weight");
  } else if (absl::EndsWith(out, "LayerNorm.beta")) {
    out.replace(out.size() - 4, 4, "bias");
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> EncoderWeights::NamedTensors()
    const {
  std::vector<std::pair<std::string, at::Tensor>> out = {
      {"embeddings.word_embeddings.weight", word_embeddings},
      {"embeddings.position_embeddings.weight", position_embeddings},
      {"embeddings.token_type_embeddings.weight", token_type_embeddings},
      {"embeddings.LayerNorm.weight", embeddings_norm.weight},
      {"embeddings.LayerNorm.bias", embeddings_norm.bias},
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    const EncoderLayerWeights& l = layers[i];
    const std::string p = absl::StrCat("encoder.layer.", i, ".");
    auto add = [&](absl::string_view module, const at::Tensor& weight,
                   const at::Tensor& bias) {
      out.emplace_back(absl::StrCat(p, module, ".weight"), weight);
      out.emplace_back(absl::StrCat(p, module, ".bias"), bias);
    };
    add("attention.self.query", l.query.weight, l.query.bias);
    add("attention.self.key", l.key.weight, l.key.bias);
    add("attention.self.value", l.value.weight, l.value.bias);
    add("attention.output.dense", l.attention_output.weight,
        l.attention_output.bias);
    add("attention.output.LayerNorm", l.attention_norm.weight,
        l.attention_norm.bias);
    add("intermediate.dense", l.intermediate.weight, l.intermediate.bias);
    add("output.dense", l.output.weight, l.output.bias);
    add("output.LayerNorm", l.output_norm.weight, l.output_norm.bias);
  }
  if (pooler.has_value()) {
    out.emplace_back("pooler.dense.weight", pooler->weight);
    out.emplace_back("pooler.dense.bias", pooler->bias);
  }
  return out;
}

absl::StatusOr<EncoderWeights> BuildEncoderWeights(
    const EncoderConfig& config,
    const std::map<std::string, at::Tensor>& tensors, absl::string_view origin,
    const EncoderLoadOptions& options) {
  if (!at::isFloatingType(options.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": encoder dtype must be floating, got ",
                     c10::toString(options.dtype)));
  }
  // Canonical name -> (name in the file, tensor).
  absl::flat_hash_map<std::string, std::pair<std::string, at::Tensor>> byname;
  std::vector<std::string> duplicate, unexpected, missing, wrong_shape,
      bad_dtype;
  for (const auto& [name, tensor] : tensors) {
    std::string canonical = Canonical(name, config);
    if (IsIgnored(canonical)) continue;
    if (!tensor.defined()) {
      bad_dtype.push_back(absl::StrCat(name, " (undefined tensor)"));
      continue;
    }
    auto [it, inserted] = byname.try_emplace(canonical, name, tensor);
    if (!inserted) {
      duplicate.push_back(
          absl::StrCat(name, " (same tensor as ", it->second.first, ")"));
    }
  }

  EncoderWeights weights;
  std::vector<Slot> slots = RequiredSlots(config, weights);
  // The pooler is optional as a pair: both tensors or neither.
  const bool has_pooler = byname.contains("pooler.dense.weight") ||
                          byname.contains("pooler.dense.bias");
  if (has_pooler) {
    weights.pooler.emplace();
    slots.push_back({"pooler.dense.weight",
                     {config.hidden_size, config.hidden_size},
                     &weights.pooler->weight});
    slots.push_back(
        {"pooler.dense.bias", {config.hidden_size}, &weights.pooler->bias});
  }

  for (const Slot& slot : slots) {
    auto it = byname.find(slot.name);
    if (it == byname.end()) {
      missing.push_back(
          absl::StrCat(slot.name, " (expected ", ShapeString(slot.shape), ")"));
      continue;
    }
    const auto& [file_name, tensor] = it->second;
    if (tensor.sizes() != at::IntArrayRef(slot.shape)) {
      wrong_shape.push_back(absl::StrCat(file_name, ": expected ",
                                         ShapeString(slot.shape), ", found ",
                                         ShapeString(tensor.sizes())));
    } else if (!at::isFloatingType(tensor.scalar_type())) {
      bad_dtype.push_back(absl::StrCat(file_name,
                                       ": expected a floating dtype, found ",
                                       c10::toString(tensor.scalar_type())));
    } else {
      *slot.dst = tensor;
    }
    byname.erase(it);
  }
  for (const auto& [canonical, entry] : byname) {
    unexpected.push_back(
        absl::StrCat(entry.first, " ", ShapeString(entry.second.sizes())));
  }

  std::vector<std::string> problems;
  auto report = [&](absl::string_view what, std::vector<std::string>& list) {
    if (list.empty()) return;
    std::sort(list.begin(), list.end());
    problems.push_back(absl::StrCat(list.size(), " ", what, ": [",
                                    absl::StrJoin(list, "; "), "]"));
  };
  report("missing tensor(s)", missing);
  report("unexpected tensor(s)", unexpected);
  report("tensor(s) with the wrong shape", wrong_shape);
  report("tensor(s) with a bad dtype", bad_dtype);
  report("duplicate tensor(s)", duplicate);
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": checkpoint does not match its config (", config.model_type,
        ", ", config.num_hidden_layers, " layers, hidden ", config.hidden_size,
        "): ", absl::StrJoin(problems, "; ")));
  }

  // Own copies on the target device: the source may be a memory map, and
  // tensors made under InferenceMode could never take part in autograd.
  c10::InferenceMode not_inference(/*enabled=*/false);
  DYLORA_RETURN_IF_ERROR(
      CallTorch(absl::StrCat(origin, ": converting weights"), [&] {
        for (const Slot& slot : slots) {
          *slot.dst = slot.dst
                          ->to(options.device, options.dtype,
                               /*non_blocking=*/false, /*copy=*/true)
                          .contiguous()
                          .set_requires_grad(false);
        }
      }));
  return weights;
}

}  // namespace dylora
