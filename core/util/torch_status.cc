#include "core/util/torch_status.h"

#include <c10/util/Exception.h>

namespace dylora {

absl::Status CurrentExceptionToStatus(absl::string_view what_failed) {
  try {
    throw;
  } catch (const c10::ValueError& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what_failed, ": ", e.what_without_backtrace()));
  } catch (const c10::IndexError& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what_failed, ": ", e.what_without_backtrace()));
  } catch (const c10::TypeError& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what_failed, ": ", e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(what_failed, ": ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what_failed, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what_failed, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(
        absl::StrCat(what_failed, ": unknown exception"));
  }
}

}  // namespace dylora
