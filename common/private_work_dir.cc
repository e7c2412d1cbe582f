#include "common/private_work_dir.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "common/file_util.h"

namespace kubehsm {
namespace {

namespace fs = std::filesystem;

// A descriptor closed (and so unlocked) on scope exit, unless released.
class Fd final {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;  // owns the descriptor
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Opens a directory for locking, never through a symlink.
int OpenDir(const fs::path& dir) { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); }

}  // namespace

Result<std::unique_ptr<PrivateWorkDir>> PrivateWorkDir::Create(const fs::path& root, const std::string& prefix) {
  KH_RETURN_IF_ERROR(EnsureDirectory(root, 0700));
  Fd root_fd(OpenDir(root));
  if (root_fd.get() < 0) {
    return PermissionDenied("cannot open the working directory root " + root.string() + ": " + ErrnoText(errno) +
                            (errno == ELOOP || errno == ENOTDIR ? " (it must be a directory, not a symlink)" : ""));
  }
  struct stat st {};
  if (::fstat(root_fd.get(), &st) != 0) return Internal("fstat " + root.string() + ": " + ErrnoText(errno));
  if (const std::string why = UntrustedWriterReason(st); !why.empty()) {
    return PermissionDenied("refusing the working directory root " + root.string() + ": " + why);
  }
  if ((st.st_mode & 077) != 0 && ::fchmod(root_fd.get(), 0700) != 0) {
    return Internal("chmod 0700 " + root.string() + ": " + ErrnoText(errno));
  }
  if (::flock(root_fd.get(), LOCK_EX) != 0) return Internal("cannot lock " + root.string() + ": " + ErrnoText(errno));

  // Directories of runs that are gone: their lock is free.
  int removed = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path p = it->path();
    if (!p.filename().string().starts_with(prefix)) continue;
    Fd fd(OpenDir(p));
    if (fd.get() < 0) {
      if (errno != ELOOP && errno != ENOTDIR) continue;
      fs::remove(p, ec);  // a symlink or file of that name: no run of ours made it
      ec.clear();
      continue;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // a live run's
    std::error_code rm;
    fs::remove_all(p, rm);
    if (rm) return Internal("cannot remove the stale working directory " + p.string() + ": " + rm.message());
    ++removed;
  }
  if (ec) return Internal("cannot list " + root.string() + ": " + ec.message());

  std::string tmpl = (root / (prefix + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Internal("cannot create a working directory in " + root.string() + ": " + ErrnoText(errno));
  }
  Fd lock(OpenDir(tmpl));
  if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    fs::remove_all(tmpl, ec);
    return Internal("cannot lock the working directory " + tmpl + ": " + ErrnoText(err));
  }
  // root_fd closes on return, releasing the root lock after this run's directory is locked.
  return std::make_unique<PrivateWorkDir>(fs::path(tmpl), lock.release(), removed);
}

PrivateWorkDir::PrivateWorkDir(fs::path path, int lock_fd, int removed_stale)
    : path_(std::move(path)), lock_fd_(lock_fd), removed_stale_(removed_stale) {}

PrivateWorkDir::~PrivateWorkDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock after the directory is gone
}

}  // namespace kubehsm
