// Engine: runs one batch of rows of ONE adapter on the shared frozen
// backbone and returns a float vector per row.
//
// Execution path per batch:
//   - no adapter                  -> backbone: mean-pooled, L2-normalised
//                                    sentence embeddings (sentence-transformers);
//   - one rank whose merged weights are cached, or the merge policy says
//     merge now                   -> merged: W0 + (alpha/b) up_b down_b;
//   - otherwise (incl. mixed ranks) -> truncated: per-row rank masks, so
//                                    rows of different ranks share one forward.
// Both adapter paths compute the same function (tests hold them to float
// tolerance). Merge policy: ranks listed in Prewarm() are merged at once; a
// rank is merged on demand once `merge_after_rows` rows at it have run
// (0: never on demand). Merged weights live in the MergeCache.
//
// Thread-safe: Run may be called from several worker threads; the backbone
// is only read. Runs under c10::InferenceMode.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/batch_types.h"
#include "server/engine/merge_cache.h"
#include "server/registry/served_adapter.h"

namespace dylora {
class Encoder;
}

namespace dylora::serving {

class ServerMetrics;

struct EngineOptions {
  // Merge a rank on demand after this many rows ran at it (0: only ranks
  // pre-warmed are ever merged).
  int64_t merge_after_rows = 64;
  int64_t merge_cache_bytes = int64_t{256} << 20;
  // Forces the truncated path even where a merge is cached (benchmarks and
  // the equivalence tests).
  bool force_truncated = false;
};

class Engine {
 public:
  // `encoder` is shared with the registry; `metrics` may be null.
  Engine(std::shared_ptr<const Encoder> encoder, EngineOptions options,
         ServerMetrics* metrics);

  // `adapter` null: backbone embeddings ([rows, hidden]). Otherwise the
  // adapter's head outputs ([rows, num_labels]) with every row at its own
  // rank. INVALID_ARGUMENT for no rows, a rank outside the adapter's range,
  // mismatched ids/type_ids or ids outside the vocabulary; INTERNAL for a
  // LibTorch failure.
  absl::StatusOr<EngineOutput> Run(const ServedAdapter* adapter,
                                   const std::vector<const EngineRow*>& rows);

  // Merges and caches `ranks` of `adapter` now (a load-time pre-warm).
  absl::Status Prewarm(const ServedAdapter& adapter,
                       const std::vector<int64_t>& ranks);
  // Forgets cached merges and counters of every version of `name`.
  void Forget(absl::string_view name);

  std::vector<int64_t> CachedRanks(const ServedAdapter& adapter) const;
  const MergeCache& merge_cache() const { return cache_; }
  const Encoder& encoder() const { return *encoder_; }

 private:
  // The cached merge for (adapter, rank), merging now when the policy says
  // so; null means run truncated.
  absl::StatusOr<std::shared_ptr<const MergedWeightsHook>> MergedFor(
      const ServedAdapter& adapter, int64_t rank, int64_t rows);
  // Merges and inserts into the cache; `*cached` says whether the cache
  // kept it (an entry over the whole budget is not kept).
  absl::StatusOr<std::shared_ptr<const MergedWeightsHook>> Merge(
      const ServedAdapter& adapter, int64_t rank, bool* cached);

  const std::shared_ptr<const Encoder> encoder_;
  const EngineOptions options_;
  ServerMetrics* const metrics_;
  MergeCache cache_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<MergeKey, int64_t> rows_seen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dylora::serving
