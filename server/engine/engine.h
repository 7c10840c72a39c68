// Engine: runs one batch on the shared frozen backbone and returns a float
// vector per row. One function per kind of batch:
//   - BackboneBatch -> mean-pooled, L2-normalised sentence embeddings
//                      (sentence-transformers);
//   - AdapterBatch  -> the adapter head's outputs, every row at its own rank:
//       merged    when the batch has one rank whose merged weights
//                 (W0 + (alpha/b) up_b down_b) are cached;
//       truncated otherwise: per-row rank masks over the adapter's factors.
// Both adapter paths compute the same function (tests hold them to float
// tolerance).
//
// Merges never run on a batch: a rank is merged by the BackgroundMerger
// once `merge_after` rows ran at it (0: never on demand) or when
// Prewarm() asks, and batches run truncated until it is cached.
//
// Batches come from the ServingRuntime, which validated every row and rank:
// the engine checks nothing again and syncs with the device only to copy
// the outputs back.
//
// Thread-safe: Run may be called from several worker threads; the backbone
// is only read. Runs under c10::InferenceMode.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/model/packed_linears.h"
#include "server/engine/background_merger.h"
#include "server/engine/batch_types.h"
#include "server/engine/merge_cache.h"
#include "server/registry/served_adapter.h"

namespace dylora {
class Encoder;
struct PackedInputs;
}  // namespace dylora

namespace dylora::serving {

class ServerMetrics;

// Names match dylora-serve's flags and TOML keys (underscores for dashes).
struct EngineOptions {
  // What the linear layers compute in (core/model/packed_linears.h). int8:
  // the backbone quantized once at start, each merged rank quantized once
  // when it is merged and cached; the truncated path adds its low-rank
  // term in fp32 to the int8 backbone. CPU only.
  Precision precision = Precision::kFp32;
  // Merge a rank in the background after this many rows ran at it (0: only
  // ranks pre-warmed are ever merged).
  int64_t merge_after = 64;
  int64_t merge_cache_mb = 256;  // merged-weight cache budget (MiB)
  // Never use merged weights (benchmarks and the equivalence tests).
  bool always_truncate = false;

  // INVALID_ARGUMENT naming the option for a value out of range.
  absl::Status Validate() const;
};

class Engine {
 public:
  // `options` must pass Validate(). `encoder` is shared with the registry;
  // `metrics` may be null. `merge` replaces the real merge (tests); by
  // default MergedWeights on `encoder`, packed like `packed_backbone` when
  // there is one. `packed_backbone` is the encoder's layers from
  // PackEncoderLinears (required for int8; for fp32 it saves repacking
  // weights on every call, and null runs plain x W^T + b).
  Engine(std::shared_ptr<const Encoder> encoder, EngineOptions options,
         ServerMetrics* metrics, MergeFunction merge = nullptr,
         std::shared_ptr<const PackedLinears> packed_backbone = nullptr);

  // [rows, hidden] unit-norm embeddings. INTERNAL for a LibTorch failure.
  absl::StatusOr<BatchOutput> Run(const BackboneBatch& batch) const;
  // [rows, num_labels] head outputs. INTERNAL for a LibTorch failure.
  absl::StatusOr<BatchOutput> Run(const AdapterBatch& batch);

  // Merges and caches `ranks` of `adapter` on the merger's thread and waits
  // (a load-time pre-warm; never called from a batch).
  absl::Status Prewarm(std::shared_ptr<const ServedAdapter> adapter,
                       const std::vector<int64_t>& ranks);
  // Drops the cached merges and counters of `version` (and older versions
  // of its name) and refuses merges of them from now on.
  void Forget(const ServedAdapter& version);
  // Blocks until no merge is queued or running (tests, benchmarks).
  void WaitForMerges() { merger_.WaitUntilIdle(); }

  std::vector<int64_t> CachedRanks(const ServedAdapter& adapter) const;
  const MergeCache& merge_cache() const { return cache_; }

 private:
  // The cached merge for the batch's single rank, or null (run truncated);
  // counts the rows and schedules the merge once the rank is hot.
  std::shared_ptr<const LinearHook> MergedOrSchedule(
      const std::shared_ptr<const ServedAdapter>& adapter, int64_t rank,
      int64_t rows);
  absl::StatusOr<PackedInputs> BatchInputs(
      const std::vector<const TokenizedText*>& rows) const;
  // Copies `result` [rows, width] to the host as one row-major float vector
  // and records the batch's metrics.
  absl::StatusOr<BatchOutput> Finish(
      const at::Tensor& result, ExecutionPath path, size_t rows,
      std::chrono::steady_clock::time_point start) const;

  const std::shared_ptr<const Encoder> encoder_;
  // The backbone's packed layers, or null (plain fp32).
  const std::shared_ptr<const PackedLinears> packed_backbone_;
  const EngineOptions options_;
  ServerMetrics* const metrics_;
  MergeCache cache_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<MergeKey, int64_t> rows_seen_ ABSL_GUARDED_BY(mu_);
  BackgroundMerger merger_;  // last: its thread stops before the rest goes
};

}  // namespace dylora::serving
