// JSON text for --json output. Never throws: invalid UTF-8 in user texts is
// replaced (U+FFFD) instead of raising nlohmann's type_error.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace dylora::client {

// Pretty-printed with two-space indentation.
inline std::string DumpJson(const nlohmann::json& document) {
  return document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dylora::client
