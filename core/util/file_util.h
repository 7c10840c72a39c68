// Whole-file reads and atomic writes. Every file dylora writes goes through
// WriteFileAtomically so that a crash or a full disk never leaves a
// half-written file under the final name.
#pragma once

#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dylora {

// An open read-only descriptor of a regular file and its size. The caller
// closes `fd`.
struct OpenFile {
  int fd = -1;
  size_t size = 0;
};

// open(2) + fstat(2), refusing anything but a regular file. Errors name the
// path: NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT (not a regular file)
// or INTERNAL.
absl::StatusOr<OpenFile> OpenRegularFile(const std::string& path);

// The status for the errno left by a failed system call on `path`
// ("<what> '<path>': <strerror>"), with NOT_FOUND / PERMISSION_DENIED where
// they apply.
absl::Status ErrnoToStatus(absl::string_view what, const std::string& path);

// Reads a whole file. `max_bytes` guards against reading something absurd
// (a config file that is really a 10 GB blob).
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             size_t max_bytes = size_t{1} << 30);

// Writes `contents` to `path` through a temporary file in the same directory,
// fsync, then rename(2). On failure the temporary is removed and `path` is
// untouched.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// Makes `dir` hold exactly `files` (name -> contents) plus whatever else it
// already held, atomically for readers: the files are written into a staging
// directory beside `dir`, other entries of `dir` are copied over, and the
// staging directory then replaces `dir` by rename. Readers see the old
// directory or the new one, never a mix; on failure `dir` is untouched.
absl::Status WriteDirectoryAtomically(
    const std::string& dir,
    const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace dylora
