// The pooling a checkpoint declares for its sentence embedding, read from the
// sentence-transformers layout: modules.json lists a module of type
// "sentence_transformers.models.Pooling" whose folder holds a config.json
// with pooling_mode_* flags. all-MiniLM-L6-v2 declares mean pooling there;
// its BERT pooler weights were never trained, so a task head should read the
// declared pooling, not the pooler.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/pooling.h"

namespace dylora {

// nullopt when `model_dir` has no modules.json or it lists no Pooling module
// (a plain Hugging Face checkpoint). INVALID_ARGUMENT naming the file and
// field for malformed files, a module path that leaves the directory, or a
// declaration we cannot compute exactly (several modes at once, weighted
// mean, last token, include_prompt false).
absl::StatusOr<std::optional<PoolingMode>> ReadDeclaredPooling(
    const std::string& model_dir);

}  // namespace dylora
