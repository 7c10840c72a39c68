// Early-return helpers for absl::Status / absl::StatusOr (Abseil does not ship
// public ones). Every fallible function in dylora returns one of the two.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DYLORA_STATUS_CONCAT_INNER(a, b) a##b
#define DYLORA_STATUS_CONCAT(a, b) DYLORA_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define DYLORA_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    if (absl::Status _dylora_status = (expr);        \
        !_dylora_status.ok()) {                      \
      return _dylora_status;                         \
    }                                                \
  } while (false)

// `lhs = value of expr` if OK, else returns its status. `lhs` may declare a
// variable: DYLORA_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
#define DYLORA_ASSIGN_OR_RETURN(lhs, expr)                                     \
  DYLORA_ASSIGN_OR_RETURN_IMPL(DYLORA_STATUS_CONCAT(_dylora_or, __LINE__), lhs, \
                               expr)
#define DYLORA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()
