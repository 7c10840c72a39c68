#include "core/io/model_config.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace dylora {
namespace {

using Json = nlohmann::json;

// Caps on sizes: anything above is a corrupt or hostile file, not a model.
constexpr int64_t kMaxVocab = 10'000'000;
constexpr int64_t kMaxHidden = 65'536;
constexpr int64_t kMaxLayers = 1'024;
constexpr int64_t kMaxHeads = 1'024;
constexpr int64_t kMaxIntermediate = 1 << 20;
constexpr int64_t kMaxPositions = 1 << 20;
constexpr int64_t kMaxTypeVocab = 1'024;
constexpr int64_t kMaxLabels = 1'000'000;
// config.json is small; refuse to read a blob.
constexpr size_t kMaxConfigBytes = 64u << 20;

class ConfigReader {
 public:
  ConfigReader(const Json& root, absl::string_view origin)
      : root_(root), origin_(origin) {}

  absl::Status Error(absl::string_view field, absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat("config '", origin_, "': field '", field, "' ", problem));
  }

  // A null value counts as absent (HF writes e.g. "pad_token_id": null).
  const Json* Get(absl::string_view field) const {
    auto it = root_.find(std::string(field));
    if (it == root_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // Integer in [min, max]; `fallback` when absent, or an error if none.
  absl::StatusOr<int64_t> Int(absl::string_view field, int64_t min, int64_t max,
                              std::optional<int64_t> fallback) const {
    const Json* value = Get(field);
    if (value == nullptr) {
      if (fallback.has_value()) return *fallback;
      return Error(field, "is required but missing");
    }
    int64_t n = 0;
    if (value->is_number_integer() && !value->is_number_unsigned()) {
      n = value->get<int64_t>();
    } else if (value->is_number_unsigned()) {
      const uint64_t u = value->get<uint64_t>();
      if (u > static_cast<uint64_t>(max)) {
        return Error(field, absl::StrCat("is ", u, ", above the limit ", max));
      }
      n = static_cast<int64_t>(u);
    } else {
      return Error(field, absl::StrCat("must be an integer, got ",
                                       value->is_number_float()
                                           ? "a floating-point number"
                                           : value->type_name()));
    }
    if (n < min) {
      return Error(field, absl::StrCat("is ", n, ", must be at least ", min));
    }
    if (n > max) {
      return Error(field, absl::StrCat("is ", n, ", above the limit ", max));
    }
    return n;
  }

  // A probability in [0, 1); `fallback` when absent.
  absl::StatusOr<std::optional<double>> Probability(
      absl::string_view field, std::optional<double> fallback) const {
    const Json* value = Get(field);
    if (value == nullptr) return fallback;
    if (!value->is_number()) {
      return Error(field,
                   absl::StrCat("must be a number, got ", value->type_name()));
    }
    const double p = value->get<double>();
    if (!(p >= 0 && p < 1)) {
      return Error(field, absl::StrCat("is ", p, ", must be in [0, 1)"));
    }
    return std::optional<double>(p);
  }

  absl::StatusOr<std::optional<std::string>> String(
      absl::string_view field) const {
    const Json* value = Get(field);
    if (value == nullptr) return std::optional<std::string>();
    if (!value->is_string()) {
      return Error(field,
                   absl::StrCat("must be a string, got ", value->type_name()));
    }
    return std::optional<std::string>(value->get<std::string>());
  }

 private:
  const Json& root_;
  absl::string_view origin_;
};

absl::StatusOr<Activation> ParseActivation(const ConfigReader& reader) {
  DYLORA_ASSIGN_OR_RETURN(std::optional<std::string> act,
                          reader.String("hidden_act"));
  if (!act.has_value()) return Activation::kGeluExact;  // BertConfig default
  if (*act == "gelu") return Activation::kGeluExact;
  if (*act == "gelu_new" || *act == "gelu_pytorch_tanh") {
    return Activation::kGeluTanh;
  }
  if (*act == "relu") return Activation::kRelu;
  if (*act == "silu" || *act == "swish") return Activation::kSilu;
  return reader.Error("hidden_act",
                      absl::StrCat("has unsupported value '", *act,
                                   "' (supported: gelu, gelu_new, "
                                   "gelu_pytorch_tanh, relu, silu, swish)"));
}

// id2label: {"0": "NEGATIVE", "1": "POSITIVE"}; keys exactly 0..n-1.
absl::Status ParseId2Label(const ConfigReader& reader, const Json& value,
                           std::vector<std::string>* labels) {
  if (!value.is_object()) {
    return reader.Error(
        "id2label", absl::StrCat("must be an object, got ", value.type_name()));
  }
  if (value.empty()) return reader.Error("id2label", "is empty");
  if (value.size() > static_cast<size_t>(kMaxLabels)) {
    return reader.Error("id2label", "has too many labels");
  }
  std::vector<std::optional<std::string>> slots(value.size());
  for (const auto& [key, name] : value.items()) {
    int64_t id = -1;
    // Canonical decimal only: "1", not "01", "+1" or " 1".
    const bool canonical =
        !key.empty() &&
        key.find_first_not_of("0123456789") == std::string::npos &&
        (key == "0" || key[0] != '0');
    if (!canonical || !absl::SimpleAtoi(key, &id) || id < 0 ||
        id >= static_cast<int64_t>(slots.size())) {
      return reader.Error(
          "id2label",
          absl::StrCat("has key '", key, "'; keys must be the integers 0..",
                       slots.size() - 1));
    }
    if (!name.is_string()) {
      return reader.Error("id2label", absl::StrCat("value for key '", key,
                                                   "' must be a string, got ",
                                                   name.type_name()));
    }
    if (slots[id].has_value()) {
      return reader.Error("id2label", absl::StrCat("repeats id ", id));
    }
    slots[id] = name.get<std::string>();
  }
  labels->clear();
  for (auto& slot : slots) labels->push_back(std::move(*slot));  // all filled
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EncoderConfig> ParseEncoderConfig(absl::string_view json_text,
                                                 absl::string_view origin) {
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end(), nullptr,
                       /*allow_exceptions=*/false);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config '", origin, "': not valid JSON: ", e.what()));
  }
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config '", origin, "': not valid JSON"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config '", origin, "': must be a JSON object, got ",
                     root.type_name()));
  }
  const ConfigReader reader(root, origin);
  EncoderConfig config;

  DYLORA_ASSIGN_OR_RETURN(std::optional<std::string> model_type,
                          reader.String("model_type"));
  // Absent model_type: treat as BERT (old BERT checkpoints omit it).
  config.model_type = model_type.value_or("bert");
  if (config.model_type == "bert") {
    config.family = EncoderFamily::kBert;
  } else if (config.model_type == "roberta" ||
             config.model_type == "xlm-roberta" ||
             config.model_type == "camembert") {
    config.family = EncoderFamily::kRoberta;
  } else {
    return reader.Error(
        "model_type",
        absl::StrCat("has unsupported value '", config.model_type,
                     "' (supported: bert, roberta, xlm-roberta, camembert)"));
  }
  const bool roberta = config.family == EncoderFamily::kRoberta;

  DYLORA_ASSIGN_OR_RETURN(config.vocab_size,
                          reader.Int("vocab_size", 1, kMaxVocab, std::nullopt));
  DYLORA_ASSIGN_OR_RETURN(
      config.hidden_size,
      reader.Int("hidden_size", 1, kMaxHidden, std::nullopt));
  DYLORA_ASSIGN_OR_RETURN(
      config.num_hidden_layers,
      reader.Int("num_hidden_layers", 1, kMaxLayers, std::nullopt));
  DYLORA_ASSIGN_OR_RETURN(
      config.num_attention_heads,
      reader.Int("num_attention_heads", 1, kMaxHeads, std::nullopt));
  if (config.hidden_size % config.num_attention_heads != 0) {
    return reader.Error(
        "num_attention_heads",
        absl::StrCat("(", config.num_attention_heads,
                     ") must divide hidden_size (", config.hidden_size, ")"));
  }
  DYLORA_ASSIGN_OR_RETURN(
      config.intermediate_size,
      reader.Int("intermediate_size", 1, kMaxIntermediate, std::nullopt));
  DYLORA_ASSIGN_OR_RETURN(config.hidden_act, ParseActivation(reader));
  // Defaults below are transformers' BertConfig/RobertaConfig defaults; a
  // missing max_position_embeddings means 512 as there.
  DYLORA_ASSIGN_OR_RETURN(
      config.max_position_embeddings,
      reader.Int("max_position_embeddings", 1, kMaxPositions, 512));
  DYLORA_ASSIGN_OR_RETURN(config.type_vocab_size,
                          reader.Int("type_vocab_size", 1, kMaxTypeVocab, 2));

  if (const Json* eps = reader.Get("layer_norm_eps"); eps != nullptr) {
    if (!eps->is_number()) {
      return reader.Error(
          "layer_norm_eps",
          absl::StrCat("must be a number, got ", eps->type_name()));
    }
    config.layer_norm_eps = eps->get<double>();
    if (!std::isfinite(config.layer_norm_eps) || config.layer_norm_eps <= 0 ||
        config.layer_norm_eps >= 1) {
      return reader.Error(
          "layer_norm_eps",
          absl::StrCat("is ", config.layer_norm_eps, ", must be in (0, 1)"));
    }
  } else {
    config.layer_norm_eps = 1e-12;
  }

  DYLORA_ASSIGN_OR_RETURN(
      config.pad_token_id,
      reader.Int("pad_token_id", 0, kMaxVocab, roberta ? 1 : 0));
  if (config.pad_token_id >= config.vocab_size) {
    return reader.Error(
        "pad_token_id",
        absl::StrCat("is ", config.pad_token_id, ", outside the vocabulary of ",
                     config.vocab_size));
  }
  config.position_offset = roberta ? config.pad_token_id + 1 : 0;
  if (config.position_offset >= config.max_position_embeddings) {
    return reader.Error(
        "max_position_embeddings",
        absl::StrCat("(", config.max_position_embeddings,
                     ") leaves no positions after the RoBERTa offset ",
                     config.position_offset, " (pad_token_id + 1)"));
  }

  DYLORA_ASSIGN_OR_RETURN(std::optional<double> hidden_dropout,
                          reader.Probability("hidden_dropout_prob", 0.1));
  config.hidden_dropout_prob = *hidden_dropout;
  DYLORA_ASSIGN_OR_RETURN(
      std::optional<double> attention_dropout,
      reader.Probability("attention_probs_dropout_prob", 0.1));
  config.attention_probs_dropout_prob = *attention_dropout;
  DYLORA_ASSIGN_OR_RETURN(
      config.classifier_dropout,
      reader.Probability("classifier_dropout", std::nullopt));

  // Labels: id2label wins (as in transformers), else num_labels, else 2.
  std::optional<int64_t> num_labels;
  if (reader.Get("num_labels") != nullptr) {
    DYLORA_ASSIGN_OR_RETURN(num_labels,
                            reader.Int("num_labels", 1, kMaxLabels, 2));
  }
  if (const Json* id2label = reader.Get("id2label"); id2label != nullptr) {
    DYLORA_RETURN_IF_ERROR(ParseId2Label(reader, *id2label, &config.id2label));
    const auto n = static_cast<int64_t>(config.id2label.size());
    if (num_labels.has_value() && *num_labels != n) {
      return reader.Error(
          "num_labels",
          absl::StrCat("is ", *num_labels, " but id2label has ", n, " labels"));
    }
    config.num_labels = n;
  } else {
    config.num_labels = num_labels.value_or(2);
    config.id2label.clear();
    for (int64_t i = 0; i < config.num_labels; ++i) {
      config.id2label.push_back(absl::StrCat("LABEL_", i));
    }
  }
  return config;
}

absl::StatusOr<EncoderConfig> LoadEncoderConfig(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = path + "/config.json";
  DYLORA_ASSIGN_OR_RETURN(std::string text,
                          ReadFileToString(file, kMaxConfigBytes));
  return ParseEncoderConfig(text, file);
}

}  // namespace dylora
