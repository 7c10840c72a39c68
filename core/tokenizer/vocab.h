// A validated token <-> id table: ids are exactly 0..size-1, each token once.
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dylora {

class Vocab {
 public:
  Vocab() = default;

  // {"token": id, ...} as in tokenizer.json's model.vocab or vocab.json.
  // `context` names the source in errors.
  static absl::StatusOr<Vocab> FromJsonObject(const nlohmann::json& json,
                                              absl::string_view context);
  // One token per line, id = line number (BERT's vocab.txt); trailing
  // whitespace of each line is dropped, as `tokenizers` does.
  static absl::StatusOr<Vocab> FromLines(absl::string_view text,
                                         absl::string_view context);

  std::optional<int32_t> Find(absl::string_view token) const {
    auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  bool Contains(absl::string_view token) const { return ids_.contains(token); }
  // `id` must be in [0, size()).
  const std::string& Token(int32_t id) const { return tokens_[id]; }
  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<std::string> tokens_;
};

}  // namespace dylora
