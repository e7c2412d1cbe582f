#include "service/unix_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/file_util.h"

namespace kubehsm::service {
namespace {

constexpr std::size_t kMaxPathLen = sizeof(sockaddr_un{}.sun_path) - 1;

// Fills `addr` for `address`; returns the address length.
socklen_t MakeAddress(const std::string& address, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (IsAbstractSocket(address)) {
    // Abstract namespace: sun_path[0] = '\0' followed by the name, length-delimited (unix(7)).
    std::memcpy(addr.sun_path + 1, address.data() + 1, address.size() - 1);
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  }
  std::memcpy(addr.sun_path, address.data(), address.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + 1);
}

Result<UniqueFd> NewUnixSocket() {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Internal("socket(AF_UNIX): " + ErrnoText(errno));
  return fd;
}

// True when something accepts connections at the filesystem socket `path`.
bool SomeoneListens(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_un addr{};
  const socklen_t len = MakeAddress(path, addr);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0;
}

std::string Uid(uid_t uid) { return "uid " + std::to_string(uid); }

}  // namespace

Status CheckSocketDirectory(const std::string& dir) {
  namespace fs = std::filesystem;
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return NotFound("socket directory " + dir + ": " + ErrnoText(errno));
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition("socket directory " + dir + " is not a directory");
  std::error_code ec;
  const fs::path real = fs::canonical(dir, ec);
  if (ec) return Internal("socket directory " + dir + ": " + ec.message());
  const uid_t me = ::geteuid();
  const std::string fix = " (use a directory like /run/kubehsm, owned by the serving user or root, mode 0750 or 0700)";
  // The directory itself: only its owner, this user or root, may add, remove or rename entries.
  if ((st.st_mode & S_IWOTH) != 0) {
    return PermissionDenied("socket directory " + dir + " is world-writable; anyone could replace the socket" + fix);
  }
  if ((st.st_mode & S_IWGRP) != 0) {
    return PermissionDenied("socket directory " + dir + " is group-writable; members of gid " +
                            std::to_string(st.st_gid) + " could replace the socket" + fix);
  }
  if (st.st_uid != me && st.st_uid != 0) {
    return PermissionDenied("socket directory " + dir + " is owned by " + Uid(st.st_uid) + ", not by this user (" +
                            Uid(me) + ") or root; its owner could move the socket away and bind an impostor" + fix);
  }
  // Every directory above it: whoever may rename an entry there can swap the whole directory. A
  // sticky directory (like /tmp) lets only an entry's owner rename it.
  for (fs::path p = real.parent_path();; p = p.parent_path()) {
    struct stat up{};
    if (::stat(p.c_str(), &up) != 0) return Internal("stat " + p.string() + ": " + ErrnoText(errno));
    if (up.st_uid != me && up.st_uid != 0) {
      return PermissionDenied("directory " + p.string() + " above the socket is owned by " + Uid(up.st_uid) +
                              ", who could replace the socket directory" + fix);
    }
    if ((up.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (up.st_mode & S_ISVTX) == 0) {
      return PermissionDenied("directory " + p.string() +
                              " above the socket is writable by others and not sticky; they could replace the "
                              "socket directory" + fix);
    }
    if (p == p.root_path() || p == p.parent_path()) break;
  }
  return OkStatus();
}

namespace {

Result<Listener> ListenAbstract(const std::string& address) {
  KH_ASSIGN_OR_RETURN(UniqueFd fd, NewUnixSocket());
  sockaddr_un addr{};
  const socklen_t len = MakeAddress(address, addr);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) return AlreadyExists("abstract socket " + address + " is already in use");
    return Internal("bind " + address + ": " + ErrnoText(err));
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) return Internal("listen " + address + ": " + ErrnoText(errno));
  return Listener(std::move(fd), "", 0, 0);
}

Result<Listener> ListenPath(const std::string& path, mode_t mode, std::optional<gid_t> group) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(path).parent_path();
  KH_RETURN_IF_ERROR(CheckSocketDirectory(parent.string()));
  struct stat existing{};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) return FailedPrecondition(path + " exists and is not a socket");
    if (SomeoneListens(path)) return AlreadyExists("another process is already serving on " + path);
    // A stale socket from a previous run: the rename below replaces it.
  }
  // Bind under a private 0700 directory, set mode and group, then rename into place, so the socket
  // is never reachable with the default (umask) permissions.
  std::string tmpl = (parent / ".kubehsm-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return PermissionDenied("cannot create a temporary directory in " + parent.string() + ": " + ErrnoText(errno));
  }
  const std::string tmp_dir = tmpl;
  const std::string tmp_path = tmp_dir + "/s";
  struct Cleanup {
    std::string dir, file;
    ~Cleanup() {
      ::unlink(file.c_str());
      ::rmdir(dir.c_str());
    }
  } cleanup{tmp_dir, tmp_path};
  if (tmp_path.size() > kMaxPathLen) return InvalidArgument("socket path " + path + " is too long");
  KH_ASSIGN_OR_RETURN(UniqueFd fd, NewUnixSocket());
  sockaddr_un addr{};
  const socklen_t len = MakeAddress(tmp_path, addr);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    return Internal("bind " + tmp_path + ": " + ErrnoText(errno));
  }
  if (::chmod(tmp_path.c_str(), mode) != 0) return Internal("chmod " + tmp_path + ": " + ErrnoText(errno));
  if (group && ::chown(tmp_path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return PermissionDenied("chgrp " + std::to_string(*group) + " of the socket: " + ErrnoText(errno));
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) return Internal("listen " + path + ": " + ErrnoText(errno));
  if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
    return Internal("rename the socket to " + path + ": " + ErrnoText(errno));
  }
  struct stat now{};
  if (::lstat(path.c_str(), &now) != 0) return Internal("stat " + path + ": " + ErrnoText(errno));
  return Listener(std::move(fd), path, now.st_dev, now.st_ino);
}

}  // namespace

Listener::~Listener() { Close(); }

void Listener::Close() {
  fd_.reset();
  if (path_.empty()) return;
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
  path_.clear();
}

Status ValidateSocketAddress(const std::string& address) {
  if (address.empty()) return InvalidArgument("--socket is required (a path like /run/kubehsm/signer.sock or @name)");
  if (address.find_first_of(std::string(" \t\n\0", 4)) != std::string::npos) {
    return InvalidArgument("socket address '" + address + "' contains whitespace or NUL");
  }
  if (IsAbstractSocket(address)) {
    if (address.size() < 2 || address.find('@', 1) != std::string::npos) {
      return InvalidArgument("abstract socket name '" + address + "' must be '@' followed by a name without '@'");
    }
    if (address.size() > kMaxPathLen) return InvalidArgument("abstract socket name '" + address + "' is too long");
    return OkStatus();
  }
  if (address[0] != '/') {
    return InvalidArgument("socket '" + address + "' must be an absolute path or '@name' (no unix:// prefix)");
  }
  // 16 characters of headroom for the temporary name used while binding.
  if (address.size() + 16 > kMaxPathLen) return InvalidArgument("socket path '" + address + "' is too long");
  return OkStatus();
}

Result<Listener> ListenUnix(const std::string& address, mode_t mode, std::optional<gid_t> group) {
  KH_RETURN_IF_ERROR(ValidateSocketAddress(address));
  if (IsAbstractSocket(address)) return ListenAbstract(address);
  return ListenPath(address, mode, group);
}

Result<Listener> ListenLoopbackTcp(int port) {
  if (port <= 0 || port > 65535) return InvalidArgument("metrics port " + std::to_string(port) + " is out of range");
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Internal("socket(AF_INET): " + ErrnoText(errno));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return Unavailable("bind 127.0.0.1:" + std::to_string(port) + ": " + ErrnoText(errno));
  }
  if (::listen(fd.get(), 16) != 0) return Internal("listen 127.0.0.1:" + std::to_string(port) + ": " + ErrnoText(errno));
  return Listener(std::move(fd), "", 0, 0);
}

Result<PeerCredentials> GetPeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    return Internal("getsockopt(SO_PEERCRED): " + ErrnoText(errno));
  }
  PeerCredentials out{cred.pid, cred.uid, cred.gid, {}};
#ifdef SO_PEERGROUPS
  std::vector<gid_t> groups(16);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      out.groups = std::move(groups);
      break;
    }
    if (errno != ERANGE) break;  // older kernels: primary gid only
    groups.resize(glen / sizeof(gid_t) + 16);
  }
#endif
  return out;
}

bool PeerPolicy::Allows(const PeerCredentials& peer) const {
  if (empty()) return true;
  if (std::find(uids.begin(), uids.end(), peer.uid) != uids.end()) return true;
  if (std::find(gids.begin(), gids.end(), peer.gid) != gids.end()) return true;
  for (gid_t g : peer.groups) {
    if (std::find(gids.begin(), gids.end(), g) != gids.end()) return true;
  }
  return false;
}

}  // namespace kubehsm::service
