// Strict UTF-8 validation (RFC 3629): rejects overlong forms, surrogates
// (U+D800..U+DFFF), code points above U+10FFFF and truncated sequences.
// Used on untrusted safetensors headers and on strings we write, because
// nlohmann::json throws when it dumps invalid UTF-8.
#pragma once

#include <cstddef>

#include "absl/strings/string_view.h"

namespace dylora {

// True if `text` is valid UTF-8. On failure, `*bad_offset` (when non-null)
// receives the byte offset of the first invalid sequence.
bool IsValidUtf8(absl::string_view text, size_t* bad_offset = nullptr);

}  // namespace dylora
