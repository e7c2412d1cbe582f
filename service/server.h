// `kubehsm serve`: Kubernetes' ExternalJWTSigner (KEP-740) for kube-apiserver, v1 and v1alpha1 on
// one gRPC server over a Unix socket, plus the standard gRPC health service and Prometheus
// metrics.
//
// Socket security (spec §6.7). gRPC 1.51 exposes no peer credentials for Unix sockets (the auth
// context of an insecure channel carries none, and peer() is just the socket path), so kubehsm
// owns the listening socket: an acceptor thread accepts each connection, reads SO_PEERCRED (and
// SO_PEERGROUPS), writes an audit line (rate-limited, with a count of the lines it suppressed),
// and hands the connected descriptor of an allowed peer to gRPC with
// grpc::AddInsecureChannelFromFd. A refused peer's connection is closed at once, and so is an
// allowed peer's beyond --max-connections-per-uid or --max-connections: no other local user can
// hold the daemon's descriptors (a flood of held connections once exhausted RLIMIT_NOFILE, starved
// the allowed client and made the token unreadable). The same code path serves filesystem and
// abstract sockets (the latter only with an explicit opt-in); there is no TCP listener for the API.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "service/log.h"
#include "service/signer_backend.h"

namespace kubehsm::service {

// kube-apiserver refuses a signer maximum below this (spec §2.1).
inline constexpr int64_t kMinMaxTokenExpirationSeconds = 600;
// Upper bound of --max-connections.
inline constexpr std::size_t kMaxConnectionsLimit = 65536;
// Descriptors kept free beyond --max-connections (token sessions and files, gRPC's own, logs,
// metrics); Serve raises the soft RLIMIT_NOFILE to fit both or refuses to start.
inline constexpr std::size_t kReservedDescriptors = 128;

struct ServeOptions {
  std::string socket;                     // absolute path or "@abstract-name" (needs the opt-in below)
  // "@name" sockets have no owner: anyone in the network namespace can bind the name while kubehsm
  // is down and impersonate the signer. Refused unless this is set (--allow-abstract-socket-insecure).
  bool allow_abstract_socket_insecure = false;
  std::optional<gid_t> socket_group;      // filesystem socket mode 0660 with this group (else 0600)
  std::vector<uid_t> allow_uids;          // SO_PEERCRED allowlist (required for abstract sockets)
  std::vector<gid_t> allow_gids;
  int64_t max_token_expiration_seconds = 86400;  // Metadata
  int64_t refresh_hint_seconds = 60;             // FetchKeys refresh_hint_seconds
  int64_t key_poll_seconds = 10;                 // how often the token's SA key labels are re-read
  std::set<std::string> exclude_from_oidc;       // kids published as verify-only
  std::size_t sessions = 8;                      // concurrent signatures / token session pool
  std::size_t max_connections = 256;             // connections held open at once, all peers
  std::size_t max_connections_per_uid = 32;      // connections held open at once by one uid
  std::string metrics_socket;                    // Prometheus text on this Unix socket ("" = off)
  int metrics_port = 0;                          // or on 127.0.0.1:port (0 = off)
  int64_t shutdown_grace_seconds = 10;           // drain time for in-flight calls on SIGTERM
  bool debug = false;                            // debug log lines, including claims
};

// Checks the options without side effects; kInvalidArgument with a message naming the flag.
Status ValidateServeOptions(const ServeOptions& options);

// Runs the signer until SIGTERM or SIGINT (SIGHUP reloads the keys). Blocks SIGTERM, SIGINT and
// SIGHUP in the calling thread first (every thread it starts inherits the mask; the signals are
// read from a signalfd), so call it before starting other threads. Opens the backend with
// `factory` and fails before serving when it cannot (the daemon does not start without a usable
// active key). Returns OK after a graceful shutdown.
Status Serve(const ServeOptions& options, BackendFactory factory, Logger& logger);

}  // namespace kubehsm::service
