// A private working directory for files that must not outlive the command that unpacks them
// (sign-dir --in-tar: kubeconfigs carrying client keys), kept where a killed run's leftovers are
// found and removed by the next run instead of lingering in /tmp:
//
//   <root>/                  0700, created if missing; must be a directory (not a symlink) that
//                            only root or the caller can write
//   <root>/<prefix>XXXXXX/   0700, one per live run, flock(LOCK_EX)ed for the owner's lifetime
//
// Create() first removes every <root>/<prefix>* directory whose lock it can take: its run is gone
// (SIGKILL, power loss; the kernel drops a dead process's locks), while a live run holds its lock,
// so a concurrent run's directory is never touched. Creation and clean-up serialize on a flock of
// <root> itself, so no run sees another's directory between mkdtemp and its lock.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"

namespace kubehsm {

class PrivateWorkDir final {
 public:
  // Removes stale directories (see above) and creates this run's. kPermissionDenied when `root` is
  // a symlink, not a directory or writable by someone else; kInternal on an I/O error.
  static Result<std::unique_ptr<PrivateWorkDir>> Create(const std::filesystem::path& root, const std::string& prefix);

  PrivateWorkDir(std::filesystem::path path, int lock_fd, int removed_stale);
  PrivateWorkDir(const PrivateWorkDir&) = delete;  // owns the directory and its lock
  PrivateWorkDir& operator=(const PrivateWorkDir&) = delete;
  // Removes the directory and everything in it, then releases the lock.
  ~PrivateWorkDir();

  const std::filesystem::path& path() const { return path_; }
  // How many directories of dead runs Create() removed.
  int removed_stale() const { return removed_stale_; }

 private:
  std::filesystem::path path_;
  int lock_fd_;
  int removed_stale_;
};

}  // namespace kubehsm
