// The one boundary where LibTorch's exceptions become absl::Status. Code that
// calls into LibTorch with inputs it did not fully validate wraps the call:
//
//   DYLORA_ASSIGN_OR_RETURN(at::Tensor y, CallTorch("encoder forward", [&] {
//     return model.Forward(x);
//   }));
#pragma once

#include <exception>
#include "absl/strings/string_view.h"
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dylora {

// Converts the exception in flight (c10::Error, std::exception or other) into
// an INTERNAL (or INVALID_ARGUMENT for c10's value/index/type errors) status
// whose message starts with `what_failed`. Call only from a catch block.
absl::Status CurrentExceptionToStatus(absl::string_view what_failed);

// Runs `fn` and returns its result, or the exception it threw as a status.
template <typename Fn>
auto CallTorch(absl::string_view what_failed, Fn&& fn)
    -> std::conditional_t<std::is_void_v<std::invoke_result_t<Fn>>,
                          absl::Status,
                          absl::StatusOr<std::invoke_result_t<Fn>>> {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn>>) {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } else {
      return std::forward<Fn>(fn)();
    }
  } catch (...) {
    return CurrentExceptionToStatus(what_failed);
  }
}

}  // namespace dylora
