// DyLoRA adapters on disk, in the PEFT LoRA layout so that Hugging Face PEFT
// can load them (at r = r_max) and so that plain PEFT LoRA adapters load here:
//
//   <dir>/adapter_config.json        PEFT LoraConfig fields (peft_type "LORA",
//                                    r = r_max, lora_alpha = alpha,
//                                    target_modules, ...) plus a "dylora"
//                                    object: format_version, r_min, r_max,
//                                    alpha, target_modules (our names),
//                                    rank_distribution, update_mode,
//                                    base_model_fingerprint, rank_metrics,
//                                    recommended_ranks.
//   <dir>/adapter_model.safetensors  base_model.model.<bert|roberta>.encoder.
//                                    layer.<L>.<module>.lora_{A,B}.weight and
//                                    the head as base_model.model.classifier.*
//                                    (what PEFT 0.17 writes for
//                                    modules_to_save=["classifier"]).
//
// Writes are atomic per directory: both files are written into a staging
// directory beside <dir> which then replaces <dir> by rename, so readers see
// the old adapter or the new one, never a mix. Files are untrusted on load:
// every field and tensor is checked and errors name the file and the field.
// All functions are thread-safe (no shared state).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/adapter/adapter.h"

namespace dylora {

class Encoder;

inline constexpr char kAdapterConfigFile[] = "adapter_config.json";
inline constexpr char kAdapterWeightsFile[] = "adapter_model.safetensors";

// "base_model.model.bert." / "base_model.model.roberta.": where PEFT puts the
// backbone of a *ForSequenceClassification model.
std::string PeftBackbonePrefix(EncoderFamily family);

// The files SaveAdapter writes, as (file name, contents), for callers that
// put them in a directory of their own (the trainer's checkpoints).
absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SerializeAdapterFiles(const DyLoraAdapter& adapter);

// The full DyLoRA adapter (all r_max ranks + metadata).
absl::Status SaveAdapter(const DyLoraAdapter& adapter, const std::string& dir);

// A PEFT LoRA adapter of rank `rank`: r = rank, the same lora_alpha (so
// PEFT's alpha / r equals DyLoRA's alpha / b), lora_A[:rank],
// lora_B[:, :rank] and the head. Its "dylora" section (PEFT drops unknown
// config keys) describes a one-rank adapter, r_min = r_max = rank, and
// keeps the head kind, the backbone fingerprint and that rank's metric.
absl::Status ExportPeftLora(const DyLoraAdapter& adapter, int64_t rank,
                            const std::string& dir);
// The files ExportPeftLora writes, as (file name, contents).
absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SerializePeftLoraFiles(const DyLoraAdapter& adapter, int64_t rank);

// Reads <dir> and checks the files' internal consistency only (tensor names,
// paired A/B, r and alpha against the config, rank ranges). A PEFT LoRA
// adapter without a "dylora" section loads with r_min = r_max = r.
absl::StatusOr<std::unique_ptr<DyLoraAdapter>> ReadAdapter(
    const std::string& dir);

// ReadAdapter + DyLoraAdapter::ValidateAgainst(encoder) + the tensor-name
// prefix must be the encoder family's.
absl::StatusOr<std::unique_ptr<DyLoraAdapter>> LoadAdapter(
    const std::string& dir, const Encoder& encoder);

// The adapter_config.json text SaveAdapter writes (exposed for tests).
std::string AdapterConfigJson(const DyLoraAdapter& adapter);

}  // namespace dylora
