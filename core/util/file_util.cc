#include "core/util/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <atomic>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"

namespace dylora {

absl::Status ErrnoToStatus(absl::string_view what, const std::string& path) {
  const int err = errno;
  std::string message = absl::StrCat(what, " '", path, "': ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::StatusOr<OpenFile> OpenRegularFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    absl::Status status = ErrnoToStatus("cannot stat", path);
    ::close(fd);
    return status;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file"));
  }
  return OpenFile{fd, static_cast<size_t>(st.st_size)};
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             size_t max_bytes) {
  auto file = OpenRegularFile(path);
  if (!file.ok()) return file.status();
  const int fd = file->fd;
  if (file->size > max_bytes) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is ", file->size, " bytes, more than the ", max_bytes,
        " allowed for this kind of file"));
  }
  std::string contents(file->size, '\0');
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::read(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = n < 0 ? ErrnoToStatus("cannot read", path)
                                  : absl::DataLossError(absl::StrCat(
                                        "'", path, "' shrank while reading"));
      ::close(fd);
      return status;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return contents;
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  std::string tmp_template = absl::StrCat(path, ".tmp.XXXXXX");
  const int fd = ::mkstemp(tmp_template.data());
  if (fd < 0) return ErrnoToStatus("cannot create a temporary file for", path);
  const std::string tmp_path = tmp_template;
  auto fail = [&](absl::Status status) {
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return status;
  };
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrnoToStatus("cannot write", tmp_path));
    done += static_cast<size_t>(n);
  }
  // mkstemp creates 0600; give the file the usual permissions.
  if (::fchmod(fd, 0644) != 0) return fail(ErrnoToStatus("cannot chmod", tmp_path));
  if (::fsync(fd) != 0) return fail(ErrnoToStatus("cannot fsync", tmp_path));
  if (::close(fd) != 0) {
    absl::Status status = ErrnoToStatus("cannot close", tmp_path);
    ::unlink(tmp_path.c_str());
    return status;
  }
  if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoToStatus("cannot rename into", path);
    ::unlink(tmp_path.c_str());
    return status;
  }
  return absl::OkStatus();
}

absl::Status WriteDirectoryAtomically(
    const std::string& dir,
    const std::vector<std::pair<std::string, std::string>>& files) {
  namespace fs = std::filesystem;
  static std::atomic<uint64_t> counter{0};
  std::error_code ec;
  fs::path target = fs::path(dir);
  if (target.filename().empty()) target = target.parent_path();  // "dir/"
  if (fs::exists(target, ec) && !fs::is_directory(target, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory"));
  }
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const std::string tag = absl::StrCat(".", ::getpid(), "-", counter++);
  const fs::path staging = target.string() + ".staging" + tag;
  const fs::path old = target.string() + ".old" + tag;
  fs::remove_all(staging, ec);
  if (!fs::create_directory(staging, ec)) {
    return absl::InternalError(absl::StrCat("cannot create ", staging.string(),
                                            ": ", ec.message()));
  }
  auto fail = [&](absl::Status status) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return status;
  };
  std::set<std::string> ours;
  for (const auto& [name, bytes] : files) {
    ours.insert(name);
    absl::Status s = WriteFileAtomically((staging / name).string(), bytes);
    if (!s.ok()) return fail(s);
  }
  if (!fs::exists(target, ec)) {
    fs::rename(staging, target, ec);
    if (ec) {
      return fail(absl::InternalError(absl::StrCat(
          "cannot move ", staging.string(), " to ", dir, ": ", ec.message())));
    }
    return absl::OkStatus();
  }
  // Carry over unrelated entries (reports, checkpoints) first, then swap.
  for (const auto& entry : fs::directory_iterator(target, ec)) {
    const std::string name = entry.path().filename().string();
    if (ours.count(name)) continue;
    std::error_code copy_ec;
    fs::copy(entry.path(), staging / name,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks,
             copy_ec);
    if (copy_ec) {
      return fail(absl::InternalError(absl::StrCat(
          "cannot carry over ", entry.path().string(), ": ", copy_ec.message())));
    }
  }
  fs::rename(target, old, ec);
  if (ec) {
    return fail(absl::InternalError(
        absl::StrCat("cannot replace ", dir, ": ", ec.message())));
  }
  fs::rename(staging, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::rename(old, target, ignored);  // put the old directory back
    return fail(absl::InternalError(
        absl::StrCat("cannot replace ", dir, ": ", ec.message())));
  }
  fs::remove_all(old, ec);
  return absl::OkStatus();
}

}  // namespace dylora
