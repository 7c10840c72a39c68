#include "server/engine/merge_cache.h"

#include <algorithm>
#include <utility>

#include "server/metrics/server_metrics.h"

namespace dylora::serving {

MergeCache::MergeCache(int64_t budget_bytes, ServerMetrics* metrics)
    : budget_bytes_(budget_bytes), metrics_(metrics) {}

std::shared_ptr<const LinearHook> MergeCache::Lookup(const MergeKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    if (metrics_ != nullptr) metrics_->CountMergeCacheMiss();
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);  // iterators stay valid
  if (metrics_ != nullptr) metrics_->CountMergeCacheHit();
  return it->second->merged;
}

bool MergeCache::Contains(const MergeKey& key) const {
  absl::MutexLock lock(&mu_);
  return index_.contains(key);
}

bool MergeCache::Insert(const MergeKey& key,
                        std::shared_ptr<const LinearHook> merged,
                        int64_t bytes) {
  // An entry that could never fit would only flush everything else out.
  if (merged == nullptr || bytes < 0 || bytes > budget_bytes_) return false;
  absl::MutexLock lock(&mu_);
  if (IsRetiredLocked(key)) return false;
  auto it = index_.find(key);
  if (it != index_.end()) {
    bytes_ -= it->second->bytes;
    it->second->merged = std::move(merged);
    it->second->bytes = bytes;
    lru_.splice(lru_.begin(), lru_, it->second);
  } else {
    lru_.push_front(Entry{key, std::move(merged), bytes});
    index_.emplace(key, lru_.begin());
  }
  bytes_ += bytes;
  EvictToBudget();
  PublishSize();
  return true;
}

void MergeCache::Retire(absl::string_view adapter, int64_t version) {
  absl::MutexLock lock(&mu_);
  int64_t& retired = retired_[adapter];
  retired = std::max(retired, version);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->key.adapter == adapter && it->key.version <= version) {
      bytes_ -= it->bytes;
      index_.erase(it->key);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  PublishSize();
}

bool MergeCache::IsRetired(const MergeKey& key) const {
  absl::MutexLock lock(&mu_);
  return IsRetiredLocked(key);
}

bool MergeCache::IsRetiredLocked(const MergeKey& key) const {
  auto it = retired_.find(key.adapter);
  return it != retired_.end() && key.version <= it->second;
}

std::vector<int64_t> MergeCache::CachedRanks(absl::string_view adapter,
                                             int64_t version) const {
  std::vector<int64_t> ranks;
  {
    absl::MutexLock lock(&mu_);
    for (const Entry& entry : lru_) {
      if (entry.key.adapter == adapter && entry.key.version == version) {
        ranks.push_back(entry.key.rank);
      }
    }
  }
  std::sort(ranks.begin(), ranks.end());
  return ranks;
}

int64_t MergeCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int64_t MergeCache::entries() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(lru_.size());
}

void MergeCache::EvictToBudget() {
  int64_t evicted = 0;
  // The front entry fits the budget on its own (Insert checked), so it is
  // never the one evicted.
  while (bytes_ > budget_bytes_ && !lru_.empty()) {
    const Entry& last = lru_.back();
    bytes_ -= last.bytes;
    index_.erase(last.key);
    lru_.pop_back();  // callers holding the shared_ptr keep the weights
    ++evicted;
  }
  if (evicted > 0 && metrics_ != nullptr) {
    metrics_->CountMergeCacheEvictions(evicted);
  }
}

void MergeCache::PublishSize() {
  if (metrics_ != nullptr) {
    metrics_->SetMergeCache(bytes_, static_cast<int64_t>(lru_.size()));
  }
}

}  // namespace dylora::serving
