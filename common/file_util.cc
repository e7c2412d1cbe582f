#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <system_error>
#include <utility>

namespace kubehsm {
namespace {

// Closes a file descriptor on scope exit.
class FdCloser final {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;  // one owner per descriptor
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string RandomSuffix() {
  std::random_device rd;
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 10; ++i) s += kAlphabet[rd() % (sizeof(kAlphabet) - 1)];
  return s;
}

Status SysError(const std::string& what, const std::filesystem::path& path, int err) {
  StatusCode code = StatusCode::kInternal;
  if (err == ENOENT) code = StatusCode::kNotFound;
  if (err == EACCES || err == EPERM || err == EROFS) code = StatusCode::kPermissionDenied;
  if (err == ENOSPC || err == EDQUOT || err == EIO) code = StatusCode::kUnavailable;
  return Status(code, what + " " + path.string() + ": " + ErrnoText(err));
}

}  // namespace

std::string ErrnoText(int err) { return std::strerror(err); }

std::string UntrustedWriterReason(const struct stat& st) {
  char mode[8];
  std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return "is owned by another user (uid " + std::to_string(st.st_uid) + ")";
  }
  if ((st.st_mode & S_IWOTH) != 0) return std::string("is world-writable (mode ") + mode + ")";
  if ((st.st_mode & S_IWGRP) != 0 && st.st_gid != 0) {
    return "is writable by group " + std::to_string(st.st_gid) + " (mode " + mode + ")";
  }
  return "";
}

Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) return PermissionDenied("refusing to write through symlink " + path.string());
    if (!S_ISREG(st.st_mode)) return InvalidArgument(path.string() + " exists and is not a regular file");
  }
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  struct stat dst {};
  if (::stat(dir.c_str(), &dst) != 0) return SysError("cannot use directory", dir, errno);
  if ((dst.st_mode & S_IWOTH) != 0) {
    return PermissionDenied("refusing to write " + path.filename().string() + " into world-writable directory " +
                            dir.string());
  }
  if (dst.st_uid != ::geteuid() && dst.st_uid != 0) {
    return PermissionDenied("refusing to write " + path.filename().string() + " into directory " + dir.string() +
                            " owned by another user (uid " + std::to_string(dst.st_uid) + ")");
  }
  const std::filesystem::path tmp = dir / ("." + path.filename().string() + ".tmp-" + RandomSuffix());

  // Where the file system supports it, the data goes into an unnamed O_TMPFILE that only gets the
  // temporary name (linkat) once complete and fsynced, right before the rename: a process killed
  // while writing (SIGKILL, OOM) leaves nothing behind, not even a hidden temporary file.
  int raw_fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode & 07777);
  const bool unnamed = raw_fd >= 0;
  if (!unnamed) {
    raw_fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
    if (raw_fd < 0) return SysError("cannot create", tmp, errno);
  }
  FdCloser fd(raw_fd);
  bool named = !unnamed;
  auto fail = [&](const std::string& what, int err) {
    if (named) ::unlink(tmp.c_str());
    return SysError(what, path, err);
  };
  if (::fchmod(fd.get(), mode & 07777) != 0) return fail("cannot chmod", errno);
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno);
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot fsync", errno);
  if (unnamed) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return fail("cannot link", errno);
    }
    named = true;
  }
  if (::close(fd.Release()) != 0) return fail("cannot close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename into place", errno);
  FdCloser dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());  // best effort: the data itself is already durable
  return OkStatus();
}

namespace {

// The kind of a non-regular file, for messages.
std::string FileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

Result<std::string> ReadBounded(const std::filesystem::path& path, std::size_t max_bytes, bool regular_only) {
  // O_NONBLOCK: opening a FIFO without a writer (or a device) must not block; regular files ignore
  // the flag, and anything else is refused right after fstat when `regular_only`.
  FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (regular_only ? O_NONBLOCK : 0)));
  if (fd.get() < 0) return SysError("cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return SysError("cannot stat", path, errno);
  if (regular_only && !S_ISREG(st.st_mode)) {
    return InvalidArgument(path.string() + " is " + FileKind(st.st_mode) + ", not a regular file; refusing to read it");
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return InvalidArgument(path.string() + " is not a regular file");
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysError("cannot read", path, errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      return InvalidArgument(path.string() + " is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace

Result<std::string> ReadFileBounded(const std::filesystem::path& path, std::size_t max_bytes) {
  return ReadBounded(path, max_bytes, false);
}

Result<std::string> ReadRegularFileBounded(const std::filesystem::path& path, std::size_t max_bytes) {
  return ReadBounded(path, max_bytes, true);
}

Status EnsureDirectory(const std::filesystem::path& dir, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return OkStatus();
  if (!dir.parent_path().empty() && dir.parent_path() != dir) {
    KH_RETURN_IF_ERROR(EnsureDirectory(dir.parent_path(), mode));
  }
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return SysError("cannot create directory", dir, errno);
  return OkStatus();
}

}  // namespace kubehsm
