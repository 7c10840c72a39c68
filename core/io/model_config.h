// Hugging Face config.json for BERT-family encoders (BERT, RoBERTa, and so
// MiniLM, which is a BERT). Parsed strictly: a missing required field or an
// absurd value (non-positive sizes, hidden size not divisible by heads,
// unknown activation, ...) is INVALID_ARGUMENT naming the field.
// Absent optional fields take transformers' BertConfig defaults
// (RobertaConfig's pad_token_id 1 for the RoBERTa family); an absent
// max_position_embeddings is 512 and an absent model_type means "bert".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora {

enum class EncoderFamily { kBert, kRoberta };
enum class Activation { kGeluExact, kGeluTanh, kRelu, kSilu };

struct EncoderConfig {
  EncoderFamily family = EncoderFamily::kBert;
  std::string model_type;  // "bert", "roberta", ... as written in the file
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  Activation hidden_act = Activation::kGeluExact;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  // RoBERTa numbers positions from pad_token_id + 1 (HF's
  // create_position_ids_from_input_ids); BERT from 0.
  int64_t position_offset = 0;
  // Classification head size: from "id2label" (keys "0".."n-1"), else
  // "num_labels", else 2 (both present must agree); 1 means regression.
  // Label names in id order; "LABEL_<i>" (as transformers) when the file
  // has no id2label.
  int64_t num_labels = 2;
  std::vector<std::string> id2label;
  // Training-time dropout the checkpoint was trained with (BertConfig
  // defaults 0.1); never applied at evaluation or serving.
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  // Before the classification head; absent (null) means hidden_dropout_prob,
  // as transformers' classifier_dropout.
  std::optional<double> classifier_dropout;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

absl::StatusOr<EncoderConfig> ParseEncoderConfig(absl::string_view json_text,
                                                 absl::string_view origin);
// Reads <dir_or_file> (a config.json path, or a directory holding one).
absl::StatusOr<EncoderConfig> LoadEncoderConfig(const std::string& path);

}  // namespace dylora
