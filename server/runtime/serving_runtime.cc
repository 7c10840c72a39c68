#include "server/runtime/serving_runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <filesystem>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "core/io/utf8.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

// "cpu", "cuda" or "cuda:<n>"; FAILED_PRECONDITION for CUDA in a build or on
// a machine without it.
absl::StatusOr<c10::Device> ParseDevice(absl::string_view name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  int index = 0;
  if (name != "cuda") {
    // Parse a copy so the message names the whole device, not its index.
    absl::string_view index_text = name;
    if (!absl::ConsumePrefix(&index_text, "cuda:") ||
        !absl::SimpleAtoi(index_text, &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown device \"", name, "\": expected cpu, cuda or cuda:<n>"));
    }
  }
  if (!at::hasCUDA()) {
    return absl::FailedPreconditionError(
        "--device cuda needs a CUDA build of dylora (DYLORA_TORCH_VARIANT=cuda, "
        "-DDYLORA_CUDA=ON) and a visible GPU");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServingRuntime>> ServingRuntime::Create(
    RuntimeOptions options, ServerMetrics* metrics) {
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError("no model directory given");
  }
  if (options.max_texts_per_request < 1 || options.max_text_bytes < 1 ||
      options.max_tokens < 3) {
    return absl::InvalidArgumentError(
        "limits must be positive (max texts, max text bytes) and max tokens "
        "at least 3");
  }
  if (options.intra_op_threads > 0) at::set_num_threads(options.intra_op_threads);
  DYLORA_ASSIGN_OR_RETURN(const c10::Device device, ParseDevice(options.device));
  Encoder::LoadOptions load_options;
  load_options.device = device;
  DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<Encoder> encoder,
                          Encoder::Load(options.model_dir, load_options));
  if (options.max_tokens > encoder->max_sequence_length()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max tokens ", options.max_tokens, " exceeds the model's ",
        encoder->max_sequence_length()));
  }
  const std::string tokenizer_path =
      options.tokenizer_path.empty()
          ? (std::filesystem::path(options.model_dir) / "tokenizer.json").string()
          : options.tokenizer_path;
  DYLORA_ASSIGN_OR_RETURN(Tokenizer tokenizer,
                          Tokenizer::FromTokenizerJsonFile(tokenizer_path));
  TruncationParams truncation;
  truncation.max_length = options.max_tokens;
  tokenizer.set_truncation(truncation);
  tokenizer.set_padding(std::nullopt);  // the engine pads each batch

  std::string backbone_name = options.backbone_name;
  if (backbone_name.empty()) {
    backbone_name =
        std::filesystem::path(options.model_dir).lexically_normal().filename().string();
    if (backbone_name.empty()) {
      backbone_name = std::filesystem::path(options.model_dir)
                          .lexically_normal()
                          .parent_path()
                          .filename()
                          .string();
    }
  }
  DYLORA_RETURN_IF_ERROR(ValidateAdapterName(backbone_name));
  return std::unique_ptr<ServingRuntime>(
      new ServingRuntime(std::move(options), std::move(encoder),
                         std::move(tokenizer), std::move(backbone_name), metrics));
}

ServingRuntime::ServingRuntime(RuntimeOptions options,
                               std::shared_ptr<const Encoder> encoder,
                               Tokenizer tokenizer, std::string backbone_name,
                               ServerMetrics* metrics)
    : options_(std::move(options)),
      encoder_(std::move(encoder)),
      tokenizer_(std::move(tokenizer)),
      backbone_name_(std::move(backbone_name)),
      metrics_(metrics),
      registry_(encoder_, metrics),
      engine_(encoder_, options_.engine, metrics),
      batcher_(
          options_.batcher,
          [this](const ServedAdapter* adapter,
                 const std::vector<const EngineRow*>& rows) {
            return engine_.Run(adapter, rows);
          },
          metrics) {
  batcher_.Start();
}

ServingRuntime::~ServingRuntime() { Shutdown(); }

absl::Status ServingRuntime::ValidateInputs(
    const std::vector<TextInput>& inputs) const {
  if (inputs.empty()) return absl::InvalidArgumentError("no input texts");
  if (static_cast<int64_t>(inputs.size()) > options_.max_texts_per_request) {
    return absl::InvalidArgumentError(
        absl::StrCat(inputs.size(), " texts in one request; the limit is ",
                     options_.max_texts_per_request));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TextInput& input = inputs[i];
    if (input.text.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("text ", i, " is empty"));
    }
    for (const std::string* text : {&input.text, &input.text_pair}) {
      const char* which = text == &input.text ? "text" : "text pair";
      if (static_cast<int64_t>(text->size()) > options_.max_text_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            which, " ", i, " has ", text->size(), " bytes; the limit is ",
            options_.max_text_bytes));
      }
      size_t bad_offset = 0;
      if (!IsValidUtf8(*text, &bad_offset)) {
        return absl::InvalidArgumentError(absl::StrCat(
            which, " ", i, " is not valid UTF-8 (byte ", bad_offset, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EngineRow>> ServingRuntime::Tokenize(
    const std::vector<TextInput>& inputs, int64_t rank) const {
  std::vector<EngineRow> rows;
  rows.reserve(inputs.size());
  for (const TextInput& input : inputs) {
    absl::StatusOr<Encoding> encoding =
        input.text_pair.empty() ? tokenizer_.Encode(input.text)
                                : tokenizer_.EncodePair(input.text, input.text_pair);
    if (!encoding.ok()) return encoding.status();
    EngineRow row;
    row.ids = std::move(encoding->ids);
    row.type_ids = std::move(encoding->type_ids);
    row.rank = rank;
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::Status ServingRuntime::Submit(InferenceCall call, InferenceDone done) {
  if (!accepting_.load()) {
    return absl::UnavailableError("the server is shutting down");
  }
  DYLORA_RETURN_IF_ERROR(ValidateInputs(call.inputs));
  std::shared_ptr<const ServedAdapter> adapter;
  ResolvedRank rank;
  if (!IsBackbone(call.model)) {
    DYLORA_ASSIGN_OR_RETURN(adapter, registry_.Get(call.model));
    DYLORA_ASSIGN_OR_RETURN(
        rank, ResolveRank(call.rank, *adapter->adapter, options_.profiles,
                          options_.default_policy));
  } else if (call.rank.kind != RankSelector::Kind::kDefault) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", call.model, "\" is the backbone (sentence embeddings); it has no "
        "ranks"));
  }
  auto task = std::make_unique<InferenceTask>();
  DYLORA_ASSIGN_OR_RETURN(task->rows, Tokenize(call.inputs, rank.rank));
  task->adapter = adapter;
  task->deadline = call.deadline;
  task->is_cancelled = std::move(call.is_cancelled);
  task->done = [adapter, rank, done = std::move(done)](
                   absl::StatusOr<TaskResult> result) {
    if (!result.ok()) {
      done(result.status());
      return;
    }
    done(InferenceReply{adapter, rank, *std::move(result)});
  };
  return batcher_.Submit(std::move(task));
}

absl::StatusOr<AdapterRegistry::LoadResult> ServingRuntime::LoadAdapter(
    absl::string_view name, absl::string_view path,
    const std::vector<int64_t>& prewarm_ranks) {
  if (IsBackbone(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", name, "\" is the backbone's name; pick another adapter name"));
  }
  for (int64_t rank : prewarm_ranks) {
    if (rank < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("pre-warm rank ", rank, " is not positive"));
    }
  }
  DYLORA_ASSIGN_OR_RETURN(AdapterRegistry::LoadResult result,
                          registry_.Load(name, path));
  if (result.replaced != nullptr) engine_.Forget(name);
  if (!prewarm_ranks.empty()) {
    // The new version already serves, so a failed pre-warm does not undo the
    // load: those ranks run truncated until merged on demand, and the
    // adapter's merged_ranks show what was cached.
    if (absl::Status status = engine_.Prewarm(*result.adapter, prewarm_ranks);
        !status.ok()) {
      spdlog::warn("adapter {}: pre-warm failed: {}", std::string(name),
                   status.ToString());
    }
  }
  return result;
}

absl::Status ServingRuntime::UnloadAdapter(absl::string_view name) {
  DYLORA_ASSIGN_OR_RETURN(std::shared_ptr<const ServedAdapter> removed,
                          registry_.Unload(name));
  engine_.Forget(removed->name);
  return absl::OkStatus();
}

void ServingRuntime::BeginShutdown() { accepting_.store(false); }

void ServingRuntime::Shutdown() {
  BeginShutdown();
  batcher_.Stop();
}

}  // namespace dylora::serving
