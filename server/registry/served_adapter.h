// One loaded version of a named adapter, as the server serves it. Immutable
// once published; requests hold a shared_ptr to the version they started
// with, so a replacement never changes a request in flight.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "core/adapter/adapter.h"
#include "core/model/heads.h"

namespace dylora::serving {

struct ServedAdapter {
  std::string name;
  int64_t version = 0;  // 1 for the first load of `name`, +1 per replacement
  std::string path;     // where it was loaded from
  // Factors and head on the backbone's device and dtype.
  std::shared_ptr<const DyLoraAdapter> adapter;
  ClassificationHead head;
  absl::Time loaded_at;
  absl::Duration load_time;

  bool regression() const { return head.num_labels() == 1; }
};

}  // namespace dylora::serving
