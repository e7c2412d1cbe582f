// Listening sockets for the signer daemon and the peer-credential policy.
//
// The ExternalJWTSigner socket is a Unix domain socket only (never TCP): either a filesystem path
// or `@name` in the Linux abstract namespace (spec §2.1). kube-apiserver does no authentication of
// its own (spec §6.7), so whoever can connect can mint tokens:
//   - a filesystem socket is created with mode 0600 (0660 with a group) under a private temporary
//     name and renamed into place, so it is never reachable with looser permissions; its directory
//     must be owned by the serving user or root and writable by nobody else, and no directory
//     above it may let another user rename it (CheckSocketDirectory);
//   - an abstract socket has no permissions and no owner: it requires an SO_PEERCRED allowlist,
//     and the caller (ValidateServeOptions) an explicit opt-in, because anyone can squat the name.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "service/unique_fd.h"

namespace kubehsm::service {

// A bound, listening socket; a filesystem socket is unlinked on destruction if it is still ours.
class Listener final {
 public:
  Listener() = default;
  Listener(UniqueFd fd, std::string path, dev_t dev, ino_t ino)
      : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), ino_(ino) {}
  Listener(Listener&&) = default;
  Listener& operator=(Listener&&) = default;
  Listener(const Listener&) = delete;  // one owner unlinks the path
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  int fd() const { return fd_.get(); }
  // Closes the socket and removes its path (when it is still the inode this listener created).
  void Close();

 private:
  UniqueFd fd_;
  std::string path_;  // "" for abstract and TCP sockets
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// True for "@name" (abstract namespace).
inline bool IsAbstractSocket(const std::string& address) { return !address.empty() && address[0] == '@'; }

// Checks a socket address without touching the filesystem: an absolute path or "@name" that fits
// sockaddr_un, with no spaces or NUL (kube-apiserver's own validation, spec §2.1).
Status ValidateSocketAddress(const std::string& address);

// Checks that directory `dir` may hold the signer socket: it exists and is a directory (kNotFound,
// kFailedPrecondition), is owned by the effective uid or root and is writable by neither group nor
// others, and every directory above it is owned by the effective uid or root and, when writable by
// group or others, sticky (kPermissionDenied naming the directory and its owner otherwise).
Status CheckSocketDirectory(const std::string& dir);

// Creates a listening Unix socket at `address` (path or "@name"). For a path: the parent directory
// must pass CheckSocketDirectory; an existing socket nobody listens on is
// replaced, a live one is kAlreadyExists, any other file kFailedPrecondition. The socket gets
// `mode` and, when given, group `group`. Non-blocking, close-on-exec.
Result<Listener> ListenUnix(const std::string& address, mode_t mode, std::optional<gid_t> group);

// Creates a listening TCP socket on 127.0.0.1:`port` (metrics only, opt-in).
Result<Listener> ListenLoopbackTcp(int port);

// The credentials the kernel recorded for a connected Unix socket's peer (SO_PEERCRED), plus its
// supplementary groups (SO_PEERGROUPS, where the kernel has it).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// Reads the peer credentials of connected socket `fd`.
Result<PeerCredentials> GetPeerCredentials(int fd);

// Who may call the signer. An empty policy allows every peer (a filesystem socket's permissions
// then decide); otherwise a peer is allowed when its uid is listed or its primary or a
// supplementary gid is listed.
struct PeerPolicy {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;

  bool empty() const { return uids.empty() && gids.empty(); }
  bool Allows(const PeerCredentials& peer) const;
};

}  // namespace kubehsm::service
