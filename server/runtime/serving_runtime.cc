#include "server/runtime/serving_runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>
#include <utility>
#include <variant>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/adapter/adapter_io.h"
#include "core/io/utf8.h"
#include "core/model/encoder.h"
#include "core/model/packed_linears.h"
#include "core/util/intra_op_threads.h"
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
        "--device cuda needs a CUDA build of dylora "
        "(DYLORA_TORCH_VARIANT=cuda, "
        "-DDYLORA_CUDA=ON) and a visible GPU");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

// The cores this process may run on (its CPU affinity mask, which honours
// cpusets and `taskset`), at least 1.
int UsableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

int RuntimeOptions::IntraOpThreads(int cores) const {
  if (threads > 0) return threads;
  return std::max(1, cores / std::max(1, batcher.workers));
}

absl::Status RuntimeOptions::Validate() const {
  if (max_texts < 1 || max_text_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max-texts and max-text-bytes must be >= 1, got ",
                     max_texts, " and ", max_text_bytes));
  }
  if (max_tokens < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max-tokens must be >= 3 ([CLS] x [SEP]), got ", max_tokens));
  }
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threads must be >= 0 (0: the cores divided by the workers), got ",
        threads));
  }
  DYLORA_RETURN_IF_ERROR(engine.Validate());
  return batcher.Validate();
}

absl::StatusOr<std::unique_ptr<ServingRuntime>> ServingRuntime::Create(
    RuntimeOptions options, ServerMetrics* metrics) {
  DYLORA_RETURN_IF_ERROR(options.Validate());
  if (options.model.empty()) {
    return absl::InvalidArgumentError("model: no model directory given");
  }
  // OpenMP threads of concurrent batches compete for the cores when they
  // outnumber them, and a spinning team then makes a forward many times
  // slower (20-40x measured on 2 cores), so the default never does.
  const int cores = UsableCores();
  const int threads = options.IntraOpThreads(cores);
  if (threads * options.batcher.workers > cores) {
    spdlog::warn(
        "{} intra-op threads x {} batch workers = {} threads on {} cores: "
        "batches will compete for the cores (leave --threads 0 to divide "
        "the cores among the workers)",
        threads, options.batcher.workers, threads * options.batcher.workers,
        cores);
  }
  // Loading, merging and request handling run one intra-op thread; only
  // the batch workers get `threads` (core/util/intra_op_threads.h).
  at::set_num_threads(1);
  DYLORA_ASSIGN_OR_RETURN(const c10::Device device,
                          ParseDevice(options.device));
  Encoder::LoadOptions load_options;
  load_options.device = device;
  DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<Encoder> encoder,
                          Encoder::Load(options.model, load_options));
  if (options.max_tokens > encoder->max_sequence_length()) {
    return absl::InvalidArgumentError(
        absl::StrCat("max tokens ", options.max_tokens, " exceeds the model's ",
                     encoder->max_sequence_length()));
  }
  const std::string tokenizer_file =
      options.tokenizer.empty()
          ? (std::filesystem::path(options.model) / "tokenizer.json").string()
          : options.tokenizer;
  DYLORA_ASSIGN_OR_RETURN(Tokenizer tokenizer,
                          Tokenizer::FromTokenizerJsonFile(tokenizer_file));
  TruncationParams truncation;
  truncation.max_length = options.max_tokens;
  tokenizer.set_truncation(truncation);
  tokenizer.set_padding(std::nullopt);  // the engine pads each batch

  std::string backbone_name = options.backbone_name;
  if (backbone_name.empty()) {
    backbone_name = std::filesystem::path(options.model)
                        .lexically_normal()
                        .filename()
                        .string();
    if (backbone_name.empty()) {
      backbone_name = std::filesystem::path(options.model)
                          .lexically_normal()
                          .parent_path()
                          .filename()
                          .string();
    }
  }
  DYLORA_RETURN_IF_ERROR(ValidateAdapterName(backbone_name));
  // The backbone's linears packed once for the precision's CPU kernel.
  // int8 cannot run without them; fp32 can (plain x W^T + b, each call
  // repacking its weight), so there their absence is only a warning, and
  // none on a GPU, where packing is a CPU matter.
  std::shared_ptr<const PackedLinears> packed_backbone;
  const Precision precision = options.engine.precision;
  absl::Status packable = CheckPackedLinearsSupported(
      precision, encoder->device(), encoder->dtype());
  if (packable.ok()) {
    DYLORA_ASSIGN_OR_RETURN(packed_backbone,
                            PackEncoderLinears(*encoder, precision));
  } else if (precision == Precision::kInt8) {
    return packable;
  } else if (encoder->device().is_cpu()) {
    spdlog::warn("serving fp32 with unpacked weights: {}",
                 std::string(packable.message()));
  }
  return std::unique_ptr<ServingRuntime>(new ServingRuntime(
      std::move(options), std::move(encoder), std::move(tokenizer),
      std::move(backbone_name), metrics, std::move(packed_backbone), threads));
}

ServingRuntime::ServingRuntime(
    RuntimeOptions options, std::shared_ptr<const Encoder> encoder,
    Tokenizer tokenizer, std::string backbone_name, ServerMetrics* metrics,
    std::shared_ptr<const PackedLinears> packed_backbone, int intra_op_threads)
    : options_(std::move(options)),
      encoder_(std::move(encoder)),
      tokenizer_(std::move(tokenizer)),
      backbone_name_(std::move(backbone_name)),
      metrics_(metrics),
      registry_(encoder_, metrics),
      engine_(encoder_, options_.engine, metrics, /*merge=*/nullptr,
              std::move(packed_backbone)),
      batcher_(
          options_.batcher,
          [this](const EngineBatch& batch) {
            return std::visit([this](const auto& b) { return engine_.Run(b); },
                              batch);
          },
          metrics) {
  batcher_.Start(
      [intra_op_threads] { SetThisThreadsIntraOpThreads(intra_op_threads); });
}

ServingRuntime::~ServingRuntime() { Shutdown(); }

absl::Status ServingRuntime::ValidateInputs(
    const std::vector<TextInput>& inputs) const {
  if (inputs.empty()) return absl::InvalidArgumentError("no input texts");
  if (static_cast<int64_t>(inputs.size()) > options_.max_texts) {
    return absl::InvalidArgumentError(
        absl::StrCat(inputs.size(), " texts in one request; the limit is ",
                     options_.max_texts));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TextInput& input = inputs[i];
    if (input.text.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("text ", i, " is empty"));
    }
    for (const std::string* text : {&input.text, &input.text_pair}) {
      const char* which = text == &input.text ? "text" : "text pair";
      if (static_cast<int64_t>(text->size()) > options_.max_text_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(which, " ", i, " has ", text->size(),
                         " bytes; the limit is ", options_.max_text_bytes));
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

absl::StatusOr<std::vector<TokenizedText>> ServingRuntime::Tokenize(
    const std::vector<TextInput>& inputs) const {
  const EncoderConfig& config = encoder_->config();
  std::vector<TokenizedText> rows;
  rows.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TextInput& input = inputs[i];
    absl::StatusOr<Encoding> encoding =
        input.text_pair.empty()
            ? tokenizer_.Encode(input.text)
            : tokenizer_.EncodePair(input.text, input.text_pair);
    if (!encoding.ok()) return encoding.status();
    // The engine trusts these: a tokenizer.json that does not belong to the
    // backbone is caught here, on the host, with the text named.
    if (encoding->ids.empty() ||
        encoding->ids.size() != encoding->type_ids.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("text ", i, " tokenized to no tokens"));
    }
    for (size_t t = 0; t < encoding->ids.size(); ++t) {
      if (encoding->ids[t] < 0 || encoding->ids[t] >= config.vocab_size ||
          encoding->type_ids[t] < 0 ||
          encoding->type_ids[t] >= config.type_vocab_size) {
        return absl::InternalError(absl::StrCat(
            "text ", i, " token ", t, ": id ", encoding->ids[t], " (type ",
            encoding->type_ids[t], ") is outside the backbone's vocabulary of ",
            config.vocab_size, " (", config.type_vocab_size,
            " types); the tokenizer does not match the model"));
      }
    }
    rows.push_back(
        TokenizedText{std::move(encoding->ids), std::move(encoding->type_ids)});
  }
  return rows;
}

absl::StatusOr<ServedModel> ServingRuntime::FindModel(
    absl::string_view name, std::optional<int64_t> version) const {
  ServedModel model = Backbone{};
  int64_t serving = kBackboneVersion;
  if (!IsBackbone(name)) {
    DYLORA_ASSIGN_OR_RETURN(std::shared_ptr<const ServedAdapter> adapter,
                            registry_.Get(name));
    serving = adapter->version;
    model = std::move(adapter);
  }
  if (version.has_value() && *version != serving) {
    return absl::NotFoundError(absl::StrCat("model \"", name,
                                            "\" has no version ", *version,
                                            "; serving version ", serving));
  }
  return model;
}

absl::StatusOr<ResolvedRequest> ServingRuntime::Resolve(
    InferenceCall call) const {
  if (!accepting_.load()) {
    return absl::UnavailableError("the server is shutting down");
  }
  DYLORA_ASSIGN_OR_RETURN(ServedModel model,
                          FindModel(call.model, call.version));
  DYLORA_RETURN_IF_ERROR(ValidateInputs(call.inputs));
  ResolvedRequest request;
  if (auto* adapter =
          std::get_if<std::shared_ptr<const ServedAdapter>>(&model)) {
    DYLORA_ASSIGN_OR_RETURN(
        ResolvedRank rank,
        ResolveRank(call.rank, *(*adapter)->adapter, options_.profiles,
                    options_.default_policy));
    request.target_ =
        AdapterAtRank{std::move(*adapter), rank.rank, std::move(rank.source)};
  } else if (call.rank.kind != RankSelector::Kind::kDefault) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", call.model,
                     "\" is the backbone (sentence embeddings); it has no "
                     "ranks"));
  }
  DYLORA_ASSIGN_OR_RETURN(request.rows_, Tokenize(call.inputs));
  request.deadline_ = call.deadline;
  request.is_cancelled_ = std::move(call.is_cancelled);
  return request;
}

absl::Status ServingRuntime::Submit(ResolvedRequest request,
                                    InferenceDone done) {
  if (!accepting_.load()) {
    return absl::UnavailableError("the server is shutting down");
  }
  auto task = std::make_unique<InferenceTask>();
  task->target = std::move(request.target_);
  task->rows = std::move(request.rows_);
  task->deadline = request.deadline_;
  task->is_cancelled = std::move(request.is_cancelled_);
  const auto* at_rank = std::get_if<AdapterAtRank>(&task->target);
  // A NaN or Inf is never an answer (softmax would turn it into a confident
  // label): the request fails, the other requests of its batch do not.
  task->done = [done = std::move(done), metrics = metrics_,
                model = at_rank != nullptr ? at_rank->adapter->name
                                           : backbone_name_](
                   absl::StatusOr<InferenceResult> result) {
    if (result.ok()) {
      const std::vector<float>& values = result->values;
      const auto bad =
          std::find_if_not(values.begin(), values.end(),
                           [](float v) { return std::isfinite(v); });
      if (bad != values.end()) {
        if (metrics != nullptr) metrics->CountNonFiniteOutput(model);
        result = absl::InternalError(absl::StrCat(
            "model \"", model,
            "\" computed a non-finite output (NaN or Inf) "
            "for text ",
            (bad - values.begin()) / std::max<int64_t>(result->width, 1),
            " of this request; the answer is withheld"));
      }
    }
    done(std::move(result));
  };
  return batcher_.Submit(std::move(task));
}

int64_t ServingRuntime::embedding_width() const {
  return encoder_->config().hidden_size;
}

AdapterStatus ServingRuntime::StatusOf(
    std::shared_ptr<const ServedAdapter> adapter) const {
  std::vector<int64_t> merged = engine_.CachedRanks(*adapter);
  return AdapterStatus{std::move(adapter), std::move(merged)};
}

std::vector<AdapterStatus> ServingRuntime::ListAdapters() const {
  std::vector<AdapterStatus> adapters;
  for (auto& served : registry_.List())
    adapters.push_back(StatusOf(std::move(served)));
  return adapters;
}

absl::StatusOr<AdapterStatus> ServingRuntime::GetAdapter(
    absl::string_view name) const {
  DYLORA_ASSIGN_OR_RETURN(std::shared_ptr<const ServedAdapter> served,
                          registry_.Get(name));
  return StatusOf(std::move(served));
}

absl::StatusOr<ExportedAdapter> ServingRuntime::ExportAdapter(
    absl::string_view name, const RankSelector& selector) const {
  if (IsBackbone(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", name, "\" is the backbone; only adapters can be exported"));
  }
  ExportedAdapter exported;
  DYLORA_ASSIGN_OR_RETURN(exported.adapter, registry_.Get(name));
  DYLORA_ASSIGN_OR_RETURN(
      exported.rank, ResolveRank(selector, *exported.adapter->adapter,
                                 options_.profiles, options_.default_policy));
  DYLORA_ASSIGN_OR_RETURN(
      exported.files,
      SerializePeftLoraFiles(*exported.adapter->adapter, exported.rank.rank));
  return exported;
}

absl::StatusOr<LoadAdapterResult> ServingRuntime::LoadAdapter(
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
  if (result.replaced != nullptr) engine_.Forget(*result.replaced);
  if (!prewarm_ranks.empty()) {
    // The new version already serves, so a failed pre-warm does not undo the
    // load: those ranks run truncated until merged on demand, and the
    // adapter's merged_ranks show what was cached.
    if (absl::Status status = engine_.Prewarm(result.adapter, prewarm_ranks);
        !status.ok()) {
      spdlog::warn("adapter {}: pre-warm failed: {}", std::string(name),
                   status.ToString());
    }
  }
  return LoadAdapterResult{StatusOf(result.adapter),
                           result.replaced != nullptr};
}

absl::Status ServingRuntime::UnloadAdapter(absl::string_view name) {
  DYLORA_ASSIGN_OR_RETURN(std::shared_ptr<const ServedAdapter> removed,
                          registry_.Unload(name));
  engine_.Forget(*removed);
  return absl::OkStatus();
}

void ServingRuntime::BeginShutdown() { accepting_.store(false); }

void ServingRuntime::Shutdown() {
  BeginShutdown();
  batcher_.Stop();
}

}  // namespace dylora::serving
