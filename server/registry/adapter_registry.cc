#include "server/registry/adapter_registry.h"

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/adapter/adapter_io.h"
#include "core/model/encoder.h"
#include "core/util/status_macros.h"
#include "server/metrics/server_metrics.h"

namespace dylora::serving {
namespace {

constexpr size_t kMaxAdapterNameLength = 128;
// How many loaded names a NOT_FOUND message lists before summarising.
constexpr size_t kMaxNamesInMessage = 10;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

// The directory check LoadAdapter cannot make: it reports a missing
// adapter_config.json, which also happens for a directory without one.
absl::Status CheckDirectory(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) {
    return absl::NotFoundError(
        absl::StrCat("adapter directory ", path, " does not exist"));
  }
  if (!std::filesystem::is_directory(status)) {
    return absl::NotFoundError(
        absl::StrCat("adapter path ", path, " is not a directory"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAdapterName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxAdapterNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter name must be 1 to ", kMaxAdapterNameLength,
                     " characters long, got ", name.size()));
  }
  if (name.front() == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter name \"", name, "\" must not start with '.'"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adapter name \"", name,
          "\" may only contain letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

AdapterRegistry::AdapterRegistry(std::shared_ptr<const Encoder> encoder,
                                 ServerMetrics* metrics)
    : encoder_(std::move(encoder)),
      metrics_(metrics),
      adapters_(std::make_shared<const Map>()) {}

absl::StatusOr<AdapterRegistry::LoadResult> AdapterRegistry::Load(
    absl::string_view name, absl::string_view path) {
  const absl::Time start = absl::Now();
  absl::StatusOr<LoadResult> result = [&]() -> absl::StatusOr<LoadResult> {
    DYLORA_RETURN_IF_ERROR(ValidateAdapterName(name));
    absl::MutexLock name_lock(NameLock(name));
    const std::string dir(path);
    DYLORA_RETURN_IF_ERROR(CheckDirectory(dir));
    DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<DyLoraAdapter> adapter,
                            LoadAdapter(dir, *encoder_));
    return PrepareAndInsert(name, *adapter, dir, start);
  }();
  RecordLoad(result.ok(), start);
  return result;
}

absl::StatusOr<AdapterRegistry::LoadResult> AdapterRegistry::Publish(
    absl::string_view name, std::shared_ptr<const DyLoraAdapter> adapter,
    absl::string_view path) {
  const absl::Time start = absl::Now();
  absl::StatusOr<LoadResult> result = [&]() -> absl::StatusOr<LoadResult> {
    DYLORA_RETURN_IF_ERROR(ValidateAdapterName(name));
    if (adapter == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("no adapter given to publish as \"", name, "\""));
    }
    absl::MutexLock name_lock(NameLock(name));
    DYLORA_RETURN_IF_ERROR(adapter->ValidateAgainst(*encoder_));
    return PrepareAndInsert(name, *adapter, std::string(path), start);
  }();
  RecordLoad(result.ok(), start);
  return result;
}

absl::StatusOr<AdapterRegistry::LoadResult> AdapterRegistry::PrepareAndInsert(
    absl::string_view name, const DyLoraAdapter& adapter, std::string path,
    absl::Time start) {
  // The copy and the head are built outside mu_: readers never wait for
  // tensor work, and a failure here leaves the map untouched.
  DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<DyLoraAdapter> placed,
                          adapter.To(encoder_->device(), encoder_->dtype()));
  DYLORA_ASSIGN_OR_RETURN(ClassificationHead head,
                          placed->BuildHead(*encoder_));
  const absl::Time loaded_at = absl::Now();

  LoadResult result;
  size_t size = 0;
  {
    absl::MutexLock lock(&mu_);
    int64_t& next_version = next_version_[name];
    if (next_version == 0) next_version = 1;
    auto served = std::make_shared<const ServedAdapter>(ServedAdapter{
        .name = std::string(name),
        .version = next_version++,
        .path = std::move(path),
        .adapter = std::shared_ptr<const DyLoraAdapter>(std::move(placed)),
        .head = std::move(head),
        .loaded_at = loaded_at,
        .load_time = loaded_at - start,
    });
    // Copy-on-write: readers holding the old map keep a consistent view.
    auto updated = std::make_shared<Map>(*adapters_);
    auto [it, inserted] = updated->try_emplace(std::string(name), served);
    if (!inserted) {
      result.replaced = std::move(it->second);
      it->second = served;
    }
    result.adapter = std::move(served);
    adapters_ = std::move(updated);
    size = adapters_->size();
  }
  if (metrics_ != nullptr)
    metrics_->SetAdaptersLoaded(static_cast<int64_t>(size));
  return result;
}

void AdapterRegistry::RecordLoad(bool ok, absl::Time start) const {
  if (metrics_ == nullptr) return;
  metrics_->RecordAdapterLoad(ok, absl::ToDoubleSeconds(absl::Now() - start));
}

absl::StatusOr<std::shared_ptr<const ServedAdapter>> AdapterRegistry::Unload(
    absl::string_view name) {
  // Serialised with loads of the same name, so an unload never interleaves
  // with a half-finished replacement. A name never loaded has no lock, and
  // none is made for it: client-chosen names must not grow name_locks_.
  absl::Mutex* name_mutex = FindNameLock(name);
  if (name_mutex == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("adapter \"", name, "\" is not loaded"));
  }
  absl::MutexLock name_lock(name_mutex);
  std::shared_ptr<const ServedAdapter> removed;
  size_t size = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = adapters_->find(name);
    if (it == adapters_->end()) {
      return absl::NotFoundError(
          absl::StrCat("adapter \"", name, "\" is not loaded"));
    }
    removed = it->second;
    auto updated = std::make_shared<Map>(*adapters_);
    updated->erase(std::string(name));
    adapters_ = std::move(updated);
    size = adapters_->size();
  }
  if (metrics_ != nullptr)
    metrics_->SetAdaptersLoaded(static_cast<int64_t>(size));
  return removed;
}

absl::StatusOr<std::shared_ptr<const ServedAdapter>> AdapterRegistry::Get(
    absl::string_view name) const {
  const std::shared_ptr<const Map> snapshot = Snapshot();
  auto it = snapshot->find(name);
  if (it != snapshot->end()) return it->second;
  if (snapshot->empty()) {
    return absl::NotFoundError(absl::StrCat(
        "adapter \"", name, "\" is not loaded (no adapters are loaded)"));
  }
  std::vector<absl::string_view> names;
  for (const auto& [loaded, unused] : *snapshot) {
    if (names.size() == kMaxNamesInMessage) break;
    names.push_back(loaded);
  }
  std::string listed = absl::StrJoin(names, ", ");
  if (snapshot->size() > names.size()) {
    absl::StrAppend(&listed, " and ", snapshot->size() - names.size(), " more");
  }
  return absl::NotFoundError(
      absl::StrCat("adapter \"", name, "\" is not loaded; loaded: ", listed));
}

std::vector<std::shared_ptr<const ServedAdapter>> AdapterRegistry::List()
    const {
  const std::shared_ptr<const Map> snapshot = Snapshot();
  std::vector<std::shared_ptr<const ServedAdapter>> adapters;
  adapters.reserve(snapshot->size());
  for (const auto& [name, served] : *snapshot) adapters.push_back(served);
  return adapters;
}

size_t AdapterRegistry::size() const { return Snapshot()->size(); }

std::shared_ptr<const AdapterRegistry::Map> AdapterRegistry::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return adapters_;
}

absl::Mutex* AdapterRegistry::NameLock(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<absl::Mutex>& slot = name_locks_[name];
  if (slot == nullptr) slot = std::make_unique<absl::Mutex>();
  return slot.get();
}

absl::Mutex* AdapterRegistry::FindNameLock(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = name_locks_.find(name);
  return it == name_locks_.end() ? nullptr : it->second.get();
}

}  // namespace dylora::serving
