// MergeCache: merged weights per (adapter name, version, rank), least
// recently used first out, bounded by a byte budget. An entry is the full
// set of merged layers of one adapter at one rank (PackedLinears in the
// serving precision, or a plain MergedWeightsHook), held as a shared_ptr<const
// LinearHook>: a batch keeps its entry alive even if it is evicted meanwhile.
//
// Keys and erasure agree on (name, version): Retire(name, version) drops
// that version and every older one of `name` and refuses them from then on,
// so a merge of a replaced version finishing late cannot re-insert it.
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
  // `budget_bytes` >= 0; `metrics` may be null.
  MergeCache(int64_t budget_bytes, ServerMetrics* metrics);

  // The entry, marked most recently used; null on a miss. Counts a hit or a
  // miss.
  std::shared_ptr<const LinearHook> Lookup(const MergeKey& key);
  // Whether `key` is cached (no hit or miss counted, LRU order unchanged).
  bool Contains(const MergeKey& key) const;
  // Inserts (or replaces) an entry of `bytes`, then evicts least recently
  // used entries until the total fits the budget. Not kept (returns false):
  // an entry larger than the whole budget, or of a retired version.
  bool Insert(const MergeKey& key, std::shared_ptr<const LinearHook> merged,
              int64_t bytes);
  // Drops versions <= `version` of `adapter` and refuses them from now on
  // (the version was replaced or unloaded; versions only grow).
  void Retire(absl::string_view adapter, int64_t version);
  bool IsRetired(const MergeKey& key) const;
  // Ranks cached for (adapter, version), ascending.
  std::vector<int64_t> CachedRanks(absl::string_view adapter,
                                   int64_t version) const;

  int64_t bytes() const;
  int64_t entries() const;
  int64_t budget_bytes() const { return budget_bytes_; }

 private:
  struct Entry {
    MergeKey key;
    std::shared_ptr<const LinearHook> merged;
    int64_t bytes = 0;
  };
  bool IsRetiredLocked(const MergeKey& key) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictToBudget() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishSize() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t budget_bytes_;
  ServerMetrics* const metrics_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  absl::flat_hash_map<MergeKey, std::list<Entry>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Per adapter name, the newest retired version.
  absl::flat_hash_map<std::string, int64_t> retired_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dylora::serving
