// MergeCache: merged weights per (adapter name, version, rank), least
// recently used first out, bounded by a byte budget. An entry is the full
// set of merged matrices of one adapter at one rank, held as a
// shared_ptr<const MergedWeightsHook>: a batch keeps its entry alive even if
// it is evicted meanwhile.
//
// Thread-safe (one mutex; lookups are O(1)).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/adapter/adapter_hooks.h"

namespace dylora::serving {

class ServerMetrics;

struct MergeKey {
  std::string adapter;
  int64_t version = 0;
  int64_t rank = 0;

  template <typename H>
  friend H AbslHashValue(H h, const MergeKey& k) {
    return H::combine(std::move(h), k.adapter, k.version, k.rank);
  }
  friend bool operator==(const MergeKey& a, const MergeKey& b) {
    return std::tie(a.adapter, a.version, a.rank) ==
           std::tie(b.adapter, b.version, b.rank);
  }
};

class MergeCache {
 public:
  // `metrics` may be null.
  MergeCache(int64_t budget_bytes, ServerMetrics* metrics);

  // The entry, marked most recently used; null on a miss. Counts a hit or a
  // miss.
  std::shared_ptr<const MergedWeightsHook> Lookup(const MergeKey& key);
  // Inserts (or replaces) an entry of `bytes`, then evicts least recently
  // used entries until the total fits the budget. An entry larger than the
  // whole budget is not kept (returns false).
  bool Insert(const MergeKey& key,
              std::shared_ptr<const MergedWeightsHook> merged, int64_t bytes);
  // Drops every version of `adapter` (unload, replacement).
  void EraseAdapter(absl::string_view adapter);
  // Ranks cached for (adapter, version), ascending.
  std::vector<int64_t> CachedRanks(absl::string_view adapter,
                                   int64_t version) const;

  int64_t bytes() const;
  int64_t entries() const;
  int64_t budget_bytes() const { return budget_bytes_; }

 private:
  struct Entry {
    MergeKey key;
    std::shared_ptr<const MergedWeightsHook> merged;
    int64_t bytes = 0;
  };
  void EvictToBudget() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishSize() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t budget_bytes_;
  ServerMetrics* const metrics_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  absl::flat_hash_map<MergeKey, std::list<Entry>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dylora::serving
