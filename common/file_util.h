// Safe file I/O: atomic writes (temp file + fsync + rename + directory fsync), bounded reads, and
// refusal of symlinked targets, so a failure never leaves a half-written file behind.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubehsm {

// Writes `data` to `path` atomically with permission bits `mode` (not subject to umask). The file
// is first written to a temporary file in the same directory, fsynced, renamed over `path`, and the
// directory is fsynced. Refuses (kPermissionDenied) when `path` is a symlink, when the directory is
// world-writable, or when it belongs to another user than the caller or root (someone else could
// swap files under us). On any failure the temporary file is removed and `path` is untouched.
Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode);

// Reads a whole regular file. Fails with kNotFound when absent, kInvalidArgument when larger than
// `max_bytes` or not a regular file.
Result<std::string> ReadFileBounded(const std::filesystem::path& path, std::size_t max_bytes);

// As ReadFileBounded, for files from untrusted media: only a regular file is read. The file is
// opened with O_NONBLOCK, so a FIFO or device never blocks the open, and anything that is not a
// regular file is refused (kInvalidArgument "<path> is a FIFO, not a regular file; ...").
Result<std::string> ReadRegularFileBounded(const std::filesystem::path& path, std::size_t max_bytes);

// Creates `dir` and missing parents with `mode` (existing directories are left as they are).
Status EnsureDirectory(const std::filesystem::path& dir, mode_t mode);

// Returns "<strerror(errno)>" for the given errno value.
std::string ErrnoText(int err);

// Why a file or directory with status `st` could have been changed by someone other than root or
// the effective user: owned by another user, world-writable, or writable by a group other than
// root's. "" when only root or the effective user can write it.
std::string UntrustedWriterReason(const struct stat& st);

}  // namespace kubehsm
