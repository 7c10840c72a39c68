// ServingRuntime: the protocol-independent server. It owns the frozen
// backbone, the tokenizer, the adapter registry, the engine and the dynamic
// batcher, and turns a request (texts, a model name, a rank selector) into
// an InferenceTask. Both gRPC services (dylora.v1 and KServe v2) are thin
// translations onto Submit(), so validation and rank rules exist once.
//
// Request path: Submit validates the texts (count, size, UTF-8, non-empty),
// finds the adapter version (holding it for the whole request), resolves the
// rank, tokenises on the caller's thread and queues the task; the batcher
// calls `done` on a worker thread with the outputs.
//
// Thread-safe. Call order: Create, Submit/LoadAdapter/... from any thread,
// BeginShutdown (refuse new work), Shutdown (drain the queue).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
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
}

namespace dylora::serving {

class ServerMetrics;

struct RuntimeOptions {
  std::string model_dir;       // config.json, model.safetensors, tokenizer.json
  std::string tokenizer_path;  // empty: <model_dir>/tokenizer.json
  std::string device = "cpu";  // "cpu", "cuda", "cuda:<n>"
  // The name under which the backbone itself serves sentence embeddings
  // (KServe model name); empty: the model directory's base name.
  std::string backbone_name;
  int64_t max_texts_per_request = 64;
  int64_t max_text_bytes = 16 * 1024;
  int64_t max_tokens = 128;  // per text (pair), longest-first truncation
  DeviceProfiles profiles;
  RankPolicy default_policy = RankPolicy::kMax;
  EngineOptions engine;
  BatcherOptions batcher;
  int intra_op_threads = 0;  // 0: LibTorch's default
};

struct TextInput {
  std::string text;
  std::string text_pair;  // empty: a single text
};

struct InferenceCall {
  std::string model;  // an adapter name, or the backbone name
  std::vector<TextInput> inputs;
  RankSelector rank;
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> is_cancelled;  // may be empty
};

struct InferenceReply {
  std::shared_ptr<const ServedAdapter> adapter;  // null: the backbone
  ResolvedRank rank;                             // rank 0 for the backbone
  TaskResult result;
};

using InferenceDone = std::function<void(absl::StatusOr<InferenceReply>)>;

class ServingRuntime {
 public:
  // Loads the backbone and tokenizer, starts the batcher's workers. `metrics`
  // may be null and must outlive the runtime.
  static absl::StatusOr<std::unique_ptr<ServingRuntime>> Create(
      RuntimeOptions options, ServerMetrics* metrics);
  ~ServingRuntime();

  // Validates `call` and queues it. On an error nothing was queued and
  // `done` is not called: NOT_FOUND (unknown model), INVALID_ARGUMENT (no
  // texts, too many, empty, too long, not UTF-8, bad rank or profile),
  // FAILED_PRECONDITION (policy without rank table), RESOURCE_EXHAUSTED
  // (queue full), UNAVAILABLE (shutting down). Otherwise `done` is called
  // exactly once, from a batcher thread.
  absl::Status Submit(InferenceCall call, InferenceDone done);

  // Loads or replaces an adapter; on success the engine forgets merges of
  // the version replaced and pre-warms `prewarm_ranks`.
  absl::StatusOr<AdapterRegistry::LoadResult> LoadAdapter(
      absl::string_view name, absl::string_view path,
      const std::vector<int64_t>& prewarm_ranks);
  absl::Status UnloadAdapter(absl::string_view name);

  // Refuses new Submit calls with UNAVAILABLE from now on.
  void BeginShutdown();
  // BeginShutdown, then runs every queued task and stops the workers.
  void Shutdown();
  bool accepting() const { return accepting_.load(); }

  const std::string& backbone_name() const { return backbone_name_; }
  bool IsBackbone(absl::string_view model) const {
    return model == backbone_name_;
  }
  const Encoder& encoder() const { return *encoder_; }
  const AdapterRegistry& registry() const { return registry_; }
  const Engine& engine() const { return engine_; }
  const RuntimeOptions& options() const { return options_; }

 private:
  ServingRuntime(RuntimeOptions options, std::shared_ptr<const Encoder> encoder,
                 Tokenizer tokenizer, std::string backbone_name,
                 ServerMetrics* metrics);

  absl::Status ValidateInputs(const std::vector<TextInput>& inputs) const;
  absl::StatusOr<std::vector<EngineRow>> Tokenize(
      const std::vector<TextInput>& inputs, int64_t rank) const;

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
