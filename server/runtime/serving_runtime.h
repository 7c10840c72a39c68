// ServingRuntime: the protocol-independent server. It owns the frozen
// backbone, the tokenizer, the adapter registry, the engine and the dynamic
// batcher, and turns a request (texts, a model name, a rank selector) into
// an InferenceTask. Both gRPC services (dylora.v1 and KServe v2) are thin
// translations onto Submit(), so validation and rank rules exist once.
//
// Request path: Resolve turns an InferenceCall into a ResolvedRequest on the
// caller's thread (one registry lookup: the adapter version is held for the
// whole request; texts checked and tokenized; rank resolved); Submit queues
// it; the batcher runs it with others on the same model and calls `done` on
// a worker thread with an InferenceResult naming the target it ran on.
//
// Thread-safe. Call order: Create, Resolve/Submit/LoadAdapter/... from any
// thread, BeginShutdown (refuse new work), Shutdown (drain the queue).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/tokenizer/tokenizer.h"
#include "server/engine/engine.h"
#include "server/registry/adapter_registry.h"
#include "server/registry/rank_resolver.h"
#include "server/scheduler/dynamic_batcher.h"

namespace dylora {
class Encoder;
class PackedLinears;
}  // namespace dylora

namespace dylora::serving {

class ServerMetrics;

// Names match dylora-serve's flags and TOML keys (underscores for dashes).
struct RuntimeOptions {
  std::string
      model;  // directory: config.json, model.safetensors, tokenizer.json
  std::string tokenizer;       // tokenizer.json; empty: the model directory's
  std::string device = "cpu";  // "cpu", "cuda", "cuda:<n>"
  // The name under which the backbone itself serves sentence embeddings
  // (KServe model name); empty: the model directory's base name.
  std::string backbone_name;
  int64_t max_texts = 64;  // per request
  int64_t max_text_bytes = 16 * 1024;
  int64_t max_tokens = 128;  // per text (pair), longest-first truncation
  DeviceProfiles profiles;   // --profile name=rank
  RankPolicy default_policy = RankPolicy::kMax;
  // Intra-op threads per batch; 0: the cores this process may run on
  // divided by batcher.workers (IntraOpThreads), so threads x workers never
  // exceed the cores by default.
  int threads = 0;
  EngineOptions engine;
  BatcherOptions batcher;

  // INVALID_ARGUMENT naming the option for a value out of range (the
  // engine's and batcher's included); Create refuses such options.
  absl::Status Validate() const;
  // The intra-op threads to run with on `cores` cores: `threads` when set,
  // else max(1, cores / batcher.workers).
  int IntraOpThreads(int cores) const;
};

struct TextInput {
  std::string text;
  std::string text_pair;  // empty: a single text
};

// What a protocol asks for, before anything is looked up or checked.
struct InferenceCall {
  std::string model;  // an adapter name, or the backbone name
  // The version that must be serving (KServe model_version); nullopt: any.
  std::optional<int64_t> version;
  std::vector<TextInput> inputs;
  RankSelector rank;
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> is_cancelled;  // may be empty
};

// The version the backbone reports (it never changes while serving).
inline constexpr int64_t kBackboneVersion = 1;

// A model as served now: the backbone, or the current version of an adapter.
using ServedModel =
    std::variant<Backbone, std::shared_ptr<const ServedAdapter>>;

// A call resolved by ServingRuntime::Resolve: the model looked up once, the
// rank resolved, the texts tokenized and checked. Immutable; Submit moves it
// into the batcher and the engine uses it unchecked.
class ResolvedRequest {
 public:
  ResolvedRequest(ResolvedRequest&&) = default;
  ResolvedRequest& operator=(ResolvedRequest&&) = default;

  const Target& target() const { return target_; }
  size_t rows() const { return rows_.size(); }

 private:
  friend class ServingRuntime;
  ResolvedRequest() = default;

  Target target_;
  std::vector<TokenizedText> rows_;
  absl::Time deadline_ = absl::InfiniteFuture();
  std::function<bool()> is_cancelled_;
};

// An adapter as ListAdapters / GetAdapter report it.
struct AdapterStatus {
  std::shared_ptr<const ServedAdapter> adapter;
  std::vector<int64_t> merged_ranks;  // ranks whose merge is cached
};

// An adapter cut to one rank as plain PEFT LoRA files (ExportAdapter).
struct ExportedAdapter {
  std::shared_ptr<const ServedAdapter> adapter;  // the version exported
  ResolvedRank rank;
  std::vector<std::pair<std::string, std::string>> files;  // (name, bytes)
};

struct LoadAdapterResult {
  AdapterStatus loaded;
  bool replaced = false;  // an older version of the name was serving
};

class ServingRuntime {
 public:
  // Loads the backbone and tokenizer, starts the batcher's workers. `metrics`
  // may be null and must outlive the runtime.
  static absl::StatusOr<std::unique_ptr<ServingRuntime>> Create(
      RuntimeOptions options, ServerMetrics* metrics);
  ~ServingRuntime();

  // Looks the model up once and checks everything about `call`:
  // NOT_FOUND (unknown model, or not the version asked for),
  // INVALID_ARGUMENT (no texts, too many, empty, too long, not UTF-8, bad
  // rank or profile, a rank for the backbone), FAILED_PRECONDITION (policy
  // without rank table), UNAVAILABLE (shutting down).
  // Checks run in that order: shutting down, the model, then the rest, so
  // a Resolve error other than UNAVAILABLE or NOT_FOUND came after the model
  // was found (ResolvedModel() says so, e.g. for a metrics label).
  absl::StatusOr<ResolvedRequest> Resolve(InferenceCall call) const;
  static bool ResolvedModel(const absl::Status& resolve_error) {
    return !absl::IsUnavailable(resolve_error) &&
           !absl::IsNotFound(resolve_error);
  }

  // Queues `request`; `done` is then called exactly once, from a batcher
  // thread, with the result (whose target is the request's). On an error
  // nothing was queued and `done` is not called: RESOURCE_EXHAUSTED (queue
  // full), UNAVAILABLE (shutting down).
  absl::Status Submit(ResolvedRequest request, InferenceDone done);

  // The model serving `name` (and `version`, when given): NOT_FOUND
  // otherwise.
  absl::StatusOr<ServedModel> FindModel(
      absl::string_view name,
      std::optional<int64_t> version = std::nullopt) const;
  std::vector<AdapterStatus> ListAdapters() const;
  absl::StatusOr<AdapterStatus> GetAdapter(absl::string_view name) const;
  // The adapter serving `name`, cut to the rank `selector` picks (by
  // Classify's rules), as PEFT LoRA files: NOT_FOUND, INVALID_ARGUMENT or
  // FAILED_PRECONDITION as Resolve says them.
  absl::StatusOr<ExportedAdapter> ExportAdapter(
      absl::string_view name, const RankSelector& selector) const;

  // Loads or replaces an adapter; on success the engine forgets merges of
  // the version replaced and pre-warms `prewarm_ranks` (on the merger's
  // thread; a failed pre-warm is logged and leaves the ranks truncated).
  absl::StatusOr<LoadAdapterResult> LoadAdapter(
      absl::string_view name, absl::string_view path,
      const std::vector<int64_t>& prewarm_ranks);
  absl::Status UnloadAdapter(absl::string_view name);

  // Refuses new requests with UNAVAILABLE from now on.
  void BeginShutdown();
  // BeginShutdown, then runs every queued task and stops the workers.
  void Shutdown();
  bool accepting() const { return accepting_.load(); }

  const std::string& backbone_name() const { return backbone_name_; }
  // The width of the backbone's sentence embeddings.
  int64_t embedding_width() const;
  // Texts one request may carry (protocols check it before decoding).
  int64_t max_texts() const { return options_.max_texts; }
  // The backbone, for tests and tools that build adapters for it.
  const Encoder& encoder() const { return *encoder_; }
  // Blocks until no merge is queued or running (tests, benchmarks).
  void WaitForMerges() { engine_.WaitForMerges(); }

 private:
  ServingRuntime(RuntimeOptions options, std::shared_ptr<const Encoder> encoder,
                 Tokenizer tokenizer, std::string backbone_name,
                 ServerMetrics* metrics,
                 std::shared_ptr<const PackedLinears> packed_backbone,
                 int intra_op_threads);

  bool IsBackbone(absl::string_view model) const {
    return model == backbone_name_;
  }
  absl::Status ValidateInputs(const std::vector<TextInput>& inputs) const;
  // Tokenizes and checks every id against the backbone's vocabularies.
  absl::StatusOr<std::vector<TokenizedText>> Tokenize(
      const std::vector<TextInput>& inputs) const;
  AdapterStatus StatusOf(std::shared_ptr<const ServedAdapter> adapter) const;

  const RuntimeOptions options_;
  const std::shared_ptr<const Encoder> encoder_;
  const Tokenizer tokenizer_;
  const std::string backbone_name_;
  ServerMetrics* const metrics_;
  AdapterRegistry registry_;
  Engine engine_;
  DynamicBatcher batcher_;
  std::atomic<bool> accepting_{true};
};

}  // namespace dylora::serving
