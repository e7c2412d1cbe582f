#include "hsm/token_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "common/file_util.h"

namespace kubehsm::hsm {
namespace {

namespace fs = std::filesystem;

std::string TrimSpace(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// SoftHSM's token directory from its configuration file, or "" when it cannot be read.
std::string SoftHsmTokenDir() {
  const char* env = std::getenv("SOFTHSM2_CONF");
  const std::string conf = env != nullptr && *env != '\0' ? env : "/etc/softhsm/softhsm2.conf";
  std::ifstream in(conf);
  std::string line;
  while (std::getline(in, line)) {
    line = TrimSpace(line);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos || TrimSpace(line.substr(0, eq)) != "directories.tokendir") continue;
    return TrimSpace(line.substr(eq + 1));
  }
  return "";
}

// errno of a failed write-access check of `path` with the effective ids, or 0.
int WriteAccessError(const fs::path& path) {
  return ::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) == 0 ? 0 : errno;
}

}  // namespace

std::string ReadOnlyTokenStoreReason(const Module& module) {
  auto info = module.Info();
  if (!info.ok() || info->manufacturer.find("SoftHSM") == std::string::npos) return "";
  const std::string dir = SoftHsmTokenDir();
  if (dir.empty()) return "";
  auto reason = [&dir](const fs::path& where, int err) {
    return "SoftHSM's token store " + dir + " is read-only for this process (" + where.string() + ": " +
           ErrnoText(err) + ")";
  };
  if (int err = WriteAccessError(dir); err != 0) return err == ENOENT ? "" : reason(dir, err);
  std::error_code ec;
  int checked = 0;
  // The token directories and their object and lock files; bounded, as this runs on a failure path.
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (++checked > 10000 || it.depth() > 1) continue;
    if (int err = WriteAccessError(it->path()); err != 0 && err != ENOENT) return reason(it->path(), err);
  }
  return "";
}

}  // namespace kubehsm::hsm
