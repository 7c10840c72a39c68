// AdapterRegistry: the named adapters the server serves, loaded, replaced and
// unloaded while requests run (TF Serving's manager, reduced to what we need).
//
// Reads take a snapshot: the name -> version map is an immutable
// shared_ptr<const Map> swapped under a mutex, so Get() never waits for a
// load. Load() reads and validates the files against the backbone before
// taking the write lock: a corrupt or mismatched adapter is refused and the
// version already serving is untouched. A replaced or unloaded version lives
// on until the last request holding it ends.
//
// Thread-safe. Loads of different names may run concurrently; loads of one
// name are serialised so versions increase by one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/registry/served_adapter.h"

namespace dylora {
class Encoder;
}

namespace dylora::serving {

class ServerMetrics;

// Adapter names: 1..128 of [A-Za-z0-9._-], not starting with '.'
// (INVALID_ARGUMENT naming the rule otherwise).
absl::Status ValidateAdapterName(absl::string_view name);

class AdapterRegistry {
 public:
  struct LoadResult {
    std::shared_ptr<const ServedAdapter> adapter;
    std::shared_ptr<const ServedAdapter> replaced;  // null for a new name
  };

  // `encoder` must outlive the registry. `metrics` may be null.
  AdapterRegistry(std::shared_ptr<const Encoder> encoder,
                  ServerMetrics* metrics);

  // Loads <path> (LoadAdapter: files, fingerprint, shapes), moves it to the
  // backbone's device and dtype, builds its head and publishes it as the
  // next version of `name`. Errors: INVALID_ARGUMENT (bad name or files),
  // NOT_FOUND (no such directory), FAILED_PRECONDITION (trained on another
  // backbone). On error the registry is unchanged.
  absl::StatusOr<LoadResult> Load(absl::string_view name,
                                  absl::string_view path);
  // The same from an adapter already in memory (tests, benchmarks); `path`
  // is only reported.
  absl::StatusOr<LoadResult> Publish(
      absl::string_view name, std::shared_ptr<const DyLoraAdapter> adapter,
      absl::string_view path);

  // Removes `name`; returns the version that was serving. NOT_FOUND.
  absl::StatusOr<std::shared_ptr<const ServedAdapter>> Unload(
      absl::string_view name);

  // The version now serving `name`; NOT_FOUND naming it.
  absl::StatusOr<std::shared_ptr<const ServedAdapter>> Get(
      absl::string_view name) const;
  // Every adapter, by name.
  std::vector<std::shared_ptr<const ServedAdapter>> List() const;
  size_t size() const;

 private:
  using Map =
      std::map<std::string, std::shared_ptr<const ServedAdapter>, std::less<>>;

  std::shared_ptr<const Map> Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  // The lock serialising loads and unloads of `name`, made on first use.
  absl::Mutex* NameLock(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  // nullptr when `name` was never loaded (or attempted).
  absl::Mutex* FindNameLock(absl::string_view name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Moves `adapter` to the backbone's device and dtype, builds its head and
  // publishes it as the next version of `name`. The caller holds the name's
  // lock; `start` is when the load began (for load_time).
  absl::StatusOr<LoadResult> PrepareAndInsert(absl::string_view name,
                                              const DyLoraAdapter& adapter,
                                              std::string path,
                                              absl::Time start)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RecordLoad(bool ok, absl::Time start) const;

  const std::shared_ptr<const Encoder> encoder_;
  ServerMetrics* const metrics_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Map> adapters_ ABSL_GUARDED_BY(mu_);
  // Next version per name; kept after unload so versions never repeat.
  absl::flat_hash_map<std::string, int64_t> next_version_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<absl::Mutex>> name_locks_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace dylora::serving
