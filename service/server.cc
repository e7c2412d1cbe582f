#include "service/server.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_posix.h>

#include "common/file_util.h"
#include "proto/externaljwt_v1.grpc.pb.h"
#include "proto/externaljwt_v1alpha1.grpc.pb.h"
#include "service/key_manager.h"
#include "service/metrics.h"
#include "service/unique_fd.h"
#include "service/unix_socket.h"

namespace kubehsm::service {
namespace {

using Clock = std::chrono::steady_clock;

// --- the one translation of kubehsm's Status into gRPC's -------------------------------------

grpc::StatusCode ToGrpcCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return grpc::StatusCode::OK;
    case StatusCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case StatusCode::kAlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case StatusCode::kPermissionDenied: return grpc::StatusCode::PERMISSION_DENIED;
    case StatusCode::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case StatusCode::kFailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case StatusCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case StatusCode::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(ToGrpcCode(s.code()), s.message());
}

// gRPC's canonical code names, as kube-apiserver's metrics label them.
const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

// --- the two API versions: identical messages in different packages (spec §1.3) ---------------

struct V1Api {
  using Service = ::v1::ExternalJWTSigner::Service;
  using SignJWTRequest = ::v1::SignJWTRequest;
  using SignJWTResponse = ::v1::SignJWTResponse;
  using FetchKeysRequest = ::v1::FetchKeysRequest;
  using FetchKeysResponse = ::v1::FetchKeysResponse;
  using MetadataRequest = ::v1::MetadataRequest;
  using MetadataResponse = ::v1::MetadataResponse;
  static constexpr const char* kName = "v1";
  static constexpr const char* kService = "v1.ExternalJWTSigner";
};

struct V1Alpha1Api {
  using Service = ::v1alpha1::ExternalJWTSigner::Service;
  using SignJWTRequest = ::v1alpha1::SignJWTRequest;
  using SignJWTResponse = ::v1alpha1::SignJWTResponse;
  using FetchKeysRequest = ::v1alpha1::FetchKeysRequest;
  using FetchKeysResponse = ::v1alpha1::FetchKeysResponse;
  using MetadataRequest = ::v1alpha1::MetadataRequest;
  using MetadataResponse = ::v1alpha1::MetadataResponse;
  static constexpr const char* kName = "v1alpha1";
  static constexpr const char* kService = "v1alpha1.ExternalJWTSigner";
};

struct ServiceDeps {
  KeyManager& keys;
  Metrics& metrics;
  Logger& logger;
  int64_t max_token_expiration_seconds;
  int64_t refresh_hint_seconds;
};

// Times one RPC and records it in the metrics (and the log, for failures) when it ends.
class CallRecorder final {
 public:
  CallRecorder(ServiceDeps& deps, const char* api, const char* method)
      : deps_(deps), api_(api), method_(method), start_(Clock::now()) {}
  CallRecorder(const CallRecorder&) = delete;  // records exactly once
  CallRecorder& operator=(const CallRecorder&) = delete;

  grpc::Status Finish(grpc::Status status) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    const char* code = GrpcCodeName(status.error_code());
    deps_.metrics.RecordRequest(api_, method_, code, seconds);
    if (!status.ok()) {
      deps_.logger.Log(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? LogLevel::kWarn : LogLevel::kError,
                       "rpc_failed",
                       {{"api", api_}, {"method", method_}, {"code", code}, {"error", status.error_message()}});
    }
    return status;
  }

 private:
  ServiceDeps& deps_;
  const char* api_;
  const char* method_;
  Clock::time_point start_;
};

template <typename Api>
class SignerService final : public Api::Service {
 public:
  explicit SignerService(ServiceDeps& deps) : deps_(deps) {}

  grpc::Status Sign(grpc::ServerContext*, const typename Api::SignJWTRequest* request,
                    typename Api::SignJWTResponse* response) override {
    CallRecorder rec(deps_, Api::kName, "Sign");
    auto signed_parts = deps_.keys.Sign(request->claims());
    if (!signed_parts.ok()) return rec.Finish(ToGrpc(signed_parts.status()));
    response->set_header(signed_parts->header);
    response->set_signature(signed_parts->signature);
    if (deps_.logger.debug_enabled()) {
      deps_.logger.Log(LogLevel::kDebug, "signed",
                       {{"api", Api::kName}, {"kid", signed_parts->kid}, {"claims", request->claims()}});
    }
    return rec.Finish(grpc::Status::OK);
  }

  grpc::Status FetchKeys(grpc::ServerContext*, const typename Api::FetchKeysRequest*,
                         typename Api::FetchKeysResponse* response) override {
    CallRecorder rec(deps_, Api::kName, "FetchKeys");
    // Served from memory: FetchKeys may be triggered by anyone holding a token (spec §6.3, §7).
    std::shared_ptr<const PublishedKeySet> set = deps_.keys.Keys();
    if (!set || set->keys.empty()) return rec.Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no keys loaded"));
    for (const auto& k : set->keys) {
      auto* key = response->add_keys();
      key->set_key_id(k.kid);
      key->set_key(k.spki_der);
      key->set_exclude_from_oidc_discovery(k.exclude_from_oidc);
    }
    response->mutable_data_timestamp()->set_seconds(set->data_timestamp_seconds);
    response->mutable_data_timestamp()->set_nanos(set->data_timestamp_nanos);
    response->set_refresh_hint_seconds(deps_.refresh_hint_seconds);
    return rec.Finish(grpc::Status::OK);
  }

  grpc::Status Metadata(grpc::ServerContext*, const typename Api::MetadataRequest*,
                        typename Api::MetadataResponse* response) override {
    CallRecorder rec(deps_, Api::kName, "Metadata");
    response->set_max_token_expiration_seconds(deps_.max_token_expiration_seconds);
    return rec.Finish(grpc::Status::OK);
  }

 private:
  ServiceDeps& deps_;
};

// --- signals: a signalfd owned by the server, no global handler state --------------------------

class SignalFd final {
 public:
  static Result<SignalFd> Create() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigset_t old;
    if (pthread_sigmask(SIG_BLOCK, &set, &old) != 0) return Internal("pthread_sigmask failed");
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd.valid()) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return Internal("signalfd: " + ErrnoText(errno));
    }
    return SignalFd(std::move(fd), old);
  }
  SignalFd(SignalFd&& o) noexcept : fd_(std::move(o.fd_)), old_(o.old_), restore_(std::exchange(o.restore_, false)) {}
  SignalFd& operator=(SignalFd&&) = delete;
  SignalFd(const SignalFd&) = delete;  // restores the signal mask exactly once
  SignalFd& operator=(const SignalFd&) = delete;
  ~SignalFd() {
    if (restore_) {
      fd_.reset();
      pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
  }

  int fd() const { return fd_.get(); }
  // The next pending signal, or 0.
  int Read() {
    signalfd_siginfo info{};
    if (::read(fd_.get(), &info, sizeof info) != sizeof info) return 0;
    return static_cast<int>(info.ssi_signo);
  }

 private:
  SignalFd(UniqueFd fd, sigset_t old) : fd_(std::move(fd)), old_(old) {}
  UniqueFd fd_;
  sigset_t old_;
  bool restore_ = true;
};

// An eventfd used to wake a thread blocked in poll().
class Waker final {
 public:
  Waker() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
  }

 private:
  UniqueFd fd_;
};

// At most `burst` log lines at once, refilled at `per_second`; counts the lines it refuses, so a
// flood of connections cannot turn the log into the bottleneck (or fill the disk) while every
// connection is still counted in the metrics and summarised in the log.
class LogBudget final {
 public:
  LogBudget(double per_second, double burst) : per_second_(per_second), burst_(burst), tokens_(burst) {}

  // True when a line may be written now; otherwise counts it as suppressed.
  bool Take(Clock::time_point now) {
    Refill(now);
    if (tokens_ >= 1) {
      tokens_ -= 1;
      return true;
    }
    ++suppressed_;
    return false;
  }
  // Lines suppressed since the last call (and resets the count) when a summary line may be written.
  uint64_t TakeSuppressed(Clock::time_point now) {
    if (suppressed_ == 0) return 0;
    Refill(now);
    if (tokens_ < 1) return 0;
    tokens_ -= 1;
    return std::exchange(suppressed_, 0);
  }

 private:
  void Refill(Clock::time_point now) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * per_second_);
  }

  const double per_second_;
  const double burst_;
  double tokens_;
  uint64_t suppressed_ = 0;
  Clock::time_point last_ = Clock::now();
};

// The connections handed to gRPC, to enforce the per-uid and total caps. gRPC owns and closes the
// descriptors without telling us, so an entry stays only while its descriptor number still refers
// to the same socket (device and inode: a reused number names another inode).
class ConnectionTable final {
 public:
  void Add(int fd, uid_t uid) {
    struct stat st{};
    if (::fstat(fd, &st) == 0) entries_.push_back({fd, st.st_dev, st.st_ino, uid});
  }
  // Forgets the connections gRPC has closed.
  void Prune() {
    std::erase_if(entries_, [](const Entry& e) {
      struct stat st{};
      return ::fstat(e.fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_dev != e.dev || st.st_ino != e.ino;
    });
  }
  std::size_t size() const { return entries_.size(); }
  std::size_t CountUid(uid_t uid) const {
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(), [uid](const Entry& e) { return e.uid == uid; }));
  }

 private:
  struct Entry {
    int fd;
    dev_t dev;
    ino_t ino;
    uid_t uid;
  };
  std::vector<Entry> entries_;
};

// Accepts on the signer socket, checks SO_PEERCRED, audits, and either hands the connection to
// gRPC or closes it at once: a refused peer, or an allowed one over --max-connections-per-uid or
// --max-connections, never holds a descriptor of the daemon.
class Acceptor final {
 public:
  Acceptor(Listener& listener, PeerPolicy policy, std::size_t max_connections, std::size_t max_per_uid,
           grpc::Server& server, Metrics& metrics, Logger& logger)
      : listener_(listener), policy_(std::move(policy)), max_connections_(max_connections),
        max_per_uid_(max_per_uid), server_(server), metrics_(metrics), logger_(logger) {}
  Acceptor(const Acceptor&) = delete;  // owns a thread
  Acceptor& operator=(const Acceptor&) = delete;
  ~Acceptor() { Stop(); }

  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Stop() {
    waker_.Wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    pollfd fds[2] = {{listener_.fd(), POLLIN, 0}, {waker_.fd(), POLLIN, 0}};
    for (;;) {
      const int n = ::poll(fds, 2, 1000);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (fds[1].revents & POLLIN) != 0) return;
      LogSuppressed();
      if (n == 0 || (fds[0].revents & POLLIN) == 0) continue;
      // Drain the backlog: a flood is accepted and closed as fast as it arrives.
      for (int i = 0; i < 256; ++i) {
        UniqueFd conn(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!conn.valid()) {
          if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            logger_.Log(LogLevel::kError, "accept_failed", {{"error", ErrnoText(errno)}});
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // e.g. EMFILE: do not spin
          }
          break;
        }
        Handle(std::move(conn));
      }
    }
  }

  void Handle(UniqueFd conn) {
    auto peer = GetPeerCredentials(conn.get());
    const bool allowed = peer.ok() && policy_.Allows(*peer);
    const char* limit = nullptr;  // which cap refused an allowed peer
    if (allowed) {
      table_.Prune();
      if (table_.CountUid(peer->uid) >= max_per_uid_) {
        limit = "max_connections_per_uid";
      } else if (table_.size() >= max_connections_) {
        limit = "max_connections";
      }
    }
    metrics_.RecordConnection(!allowed ? Metrics::ConnectionResult::kDenied
                              : limit  ? Metrics::ConnectionResult::kOverLimit
                                       : Metrics::ConnectionResult::kAllowed);
    if (budget_.Take(Clock::now())) {
      logger_.Log(allowed && limit == nullptr ? LogLevel::kInfo : LogLevel::kWarn, "audit_connection",
                  {{"allowed", allowed && limit == nullptr ? "true" : "false"},
                   {"peer", "fd:" + std::to_string(conn.get())},
                   {"pid", peer.ok() ? std::to_string(peer->pid) : "?"},
                   {"uid", peer.ok() ? std::to_string(peer->uid) : "?"},
                   {"gid", peer.ok() ? std::to_string(peer->gid) : "?"},
                   {"reason", !allowed ? (peer.ok() ? "peer_credentials" : "no_peer_credentials")
                              : limit  ? limit
                                       : ""},
                   {"error", peer.ok() ? "" : peer.status().message()}});
    }
    if (!allowed || limit != nullptr) return;  // closed here, at once
    table_.Add(conn.get(), peer->uid);
    // gRPC takes ownership of the descriptor.
    grpc::AddInsecureChannelFromFd(&server_, conn.release());
  }

  // One summary line for the audit lines the budget suppressed.
  void LogSuppressed() {
    if (const uint64_t n = budget_.TakeSuppressed(Clock::now()); n != 0) {
      logger_.Log(LogLevel::kWarn, "audit_connection_suppressed",
                  {{"count", std::to_string(n)}, {"detail", "connection audit lines over the log rate limit"}});
    }
  }

  Listener& listener_;
  const PeerPolicy policy_;
  const std::size_t max_connections_;
  const std::size_t max_per_uid_;
  grpc::Server& server_;
  Metrics& metrics_;
  Logger& logger_;
  ConnectionTable table_;                       // acceptor thread only
  LogBudget budget_{/*per_second=*/20, /*burst=*/50};  // acceptor thread only
  Waker waker_;
  std::thread thread_;
};

// A minimal HTTP/1.0 responder for Prometheus scrapes: GET /metrics, one request per connection.
class MetricsHttpServer final {
 public:
  MetricsHttpServer(Listener listener, Metrics& metrics, Logger& logger)
      : listener_(std::move(listener)), metrics_(metrics), logger_(logger) {}
  MetricsHttpServer(const MetricsHttpServer&) = delete;  // owns a thread
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  ~MetricsHttpServer() { Stop(); }

  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Stop() {
    waker_.Wake();
    if (thread_.joinable()) thread_.join();
    listener_.Close();
  }

 private:
  void Run() {
    pollfd fds[2] = {{listener_.fd(), POLLIN, 0}, {waker_.fd(), POLLIN, 0}};
    for (;;) {
      const int n = ::poll(fds, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (fds[1].revents & POLLIN) != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      UniqueFd conn(::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.valid()) Serve(conn.get());
    }
  }

  void Serve(int fd) {
    // Read the request head with a 2 s budget; one slow client cannot hold the thread longer.
    std::string request;
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return;
      const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r <= 0) break;
      request.append(buf, static_cast<std::size_t>(r));
    }
    std::string status = "200 OK";
    std::string body;
    std::string type = "text/plain; version=0.0.4; charset=utf-8";
    if (request.rfind("GET /metrics ", 0) == 0 || request.rfind("GET /metrics?", 0) == 0) {
      body = metrics_.RenderPrometheus();
    } else if (request.rfind("GET / ", 0) == 0) {
      body = "kubehsm serve: metrics at /metrics\n";
    } else {
      status = "404 Not Found";
      body = "not found\n";
    }
    const std::string response = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                                 "\r\nContent-Length: " + std::to_string(body.size()) +
                                 "\r\nConnection: close\r\n\r\n" + body;
    std::size_t off = 0;
    while (off < response.size()) {
      const ssize_t w = ::send(fd, response.data() + off, response.size() - off, MSG_NOSIGNAL);
      if (w <= 0) {
        logger_.Log(LogLevel::kDebug, "metrics_write_failed", {{"error", ErrnoText(errno)}});
        return;
      }
      off += static_cast<std::size_t>(w);
    }
  }

  Listener listener_;
  Metrics& metrics_;
  Logger& logger_;
  Waker waker_;
  std::thread thread_;
};

std::string JoinIds(const std::vector<unsigned>& ids) {
  std::string out;
  for (unsigned id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out;
}

}  // namespace

Status ValidateServeOptions(const ServeOptions& o) {
  KH_RETURN_IF_ERROR(ValidateSocketAddress(o.socket));
  for (const std::string* address : {&o.socket, &o.metrics_socket}) {
    if (IsAbstractSocket(*address) && !o.allow_abstract_socket_insecure) {
      return InvalidArgument(
          "abstract socket " + *address +
          " refused: an abstract name has no owner, so any local process (a hostNetwork pod too) can bind it "
          "while kubehsm is not running and impersonate the signer; use a filesystem socket such as "
          "/run/kubehsm/signer.sock, or accept the risk with --allow-abstract-socket-insecure");
    }
  }
  if (IsAbstractSocket(o.socket) && o.allow_uids.empty() && o.allow_gids.empty()) {
    return InvalidArgument("an abstract socket (" + o.socket +
                           ") has no file permissions: give --allow-uid and/or --allow-gid");
  }
  if (IsAbstractSocket(o.socket) && o.socket_group) {
    return InvalidArgument("--socket-group applies to filesystem sockets only");
  }
  if (o.max_token_expiration_seconds < kMinMaxTokenExpirationSeconds) {
    return InvalidArgument("--max-token-expiration-seconds " + std::to_string(o.max_token_expiration_seconds) +
                           " is below 600; kube-apiserver refuses a signer maximum under 600 s");
  }
  if (o.max_token_expiration_seconds > (int64_t{1} << 32)) {
    return InvalidArgument("--max-token-expiration-seconds must be at most 2^32");
  }
  if (o.refresh_hint_seconds <= 0) return InvalidArgument("--refresh-hint-seconds must be > 0");
  if (o.key_poll_seconds <= 0) return InvalidArgument("--key-poll-seconds must be > 0");
  if (o.sessions < 1 || o.sessions > 1024) return InvalidArgument("--sessions must be between 1 and 1024");
  if (o.shutdown_grace_seconds < 0) return InvalidArgument("--shutdown-grace-seconds must be >= 0");
  if (o.max_connections < 1 || o.max_connections > kMaxConnectionsLimit) {
    return InvalidArgument("--max-connections must be between 1 and " + std::to_string(kMaxConnectionsLimit));
  }
  if (o.max_connections_per_uid < 1 || o.max_connections_per_uid > o.max_connections) {
    return InvalidArgument("--max-connections-per-uid must be between 1 and --max-connections (" +
                           std::to_string(o.max_connections) + ")");
  }
  if (!o.metrics_socket.empty()) {
    KH_RETURN_IF_ERROR(ValidateSocketAddress(o.metrics_socket).WithContext("--metrics-socket"));
    if (o.metrics_socket == o.socket) return InvalidArgument("--metrics-socket must differ from --socket");
  }
  if (o.metrics_port < 0 || o.metrics_port > 65535) return InvalidArgument("--metrics-port must be 1..65535");
  if (!o.metrics_socket.empty() && o.metrics_port != 0) {
    return InvalidArgument("--metrics-socket and --metrics-port are mutually exclusive");
  }
  for (const auto& kid : o.exclude_from_oidc) {
    if (kid.empty() || kid.size() > 1024) return InvalidArgument("--exclude-from-oidc kid must be 1..1024 bytes");
  }
  return OkStatus();
}

Status EnsureDescriptorBudget(std::size_t max_connections) {
  const rlim_t need = static_cast<rlim_t>(max_connections + kReservedDescriptors);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return Internal("getrlimit(RLIMIT_NOFILE): " + ErrnoText(errno));
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur)) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : std::min(need, rl.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return Internal("setrlimit(RLIMIT_NOFILE): " + ErrnoText(errno));
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    return FailedPrecondition("the open-file limit (RLIMIT_NOFILE) is " + std::to_string(rl.rlim_cur) +
                              ", below --max-connections " + std::to_string(max_connections) + " plus " +
                              std::to_string(kReservedDescriptors) +
                              " descriptors for the token, gRPC and logs; raise LimitNOFILE= (ulimit -n) or lower "
                              "--max-connections");
  }
  return OkStatus();
}

Status Serve(const ServeOptions& options, BackendFactory factory, Logger& logger) {
  KH_RETURN_IF_ERROR(ValidateServeOptions(options));
  KH_RETURN_IF_ERROR(EnsureDescriptorBudget(options.max_connections));
  // Before any thread exists: every thread started below inherits the blocked mask.
  KH_ASSIGN_OR_RETURN(SignalFd signals, SignalFd::Create());
  ::signal(SIGPIPE, SIG_IGN);

  const mode_t mode = options.socket_group ? 0660 : 0600;
  KH_ASSIGN_OR_RETURN(Listener listener, ListenUnix(options.socket, mode, options.socket_group));
  std::optional<Listener> metrics_listener;
  if (!options.metrics_socket.empty()) {
    KH_ASSIGN_OR_RETURN(metrics_listener, ListenUnix(options.metrics_socket, mode, options.socket_group));
  } else if (options.metrics_port != 0) {
    KH_ASSIGN_OR_RETURN(metrics_listener, ListenLoopbackTcp(options.metrics_port));
  }

  Metrics metrics;
  KeyManagerOptions kopts;
  kopts.exclude_from_oidc = options.exclude_from_oidc;
  kopts.poll_interval = std::chrono::seconds(options.key_poll_seconds);
  kopts.sessions = options.sessions;
  kopts.max_token_expiration_seconds = options.max_token_expiration_seconds;
  KH_ASSIGN_OR_RETURN(std::unique_ptr<KeyManager> keys,
                      KeyManager::Start(std::move(factory), kopts, logger, metrics));

  ServiceDeps deps{*keys, metrics, logger, options.max_token_expiration_seconds, options.refresh_hint_seconds};
  auto v1 = std::make_unique<SignerService<V1Api>>(deps);
  auto v1alpha1 = std::make_unique<SignerService<V1Alpha1Api>>(deps);

  // The signing server: no listening port of its own; connections arrive from the Acceptor.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC's sync server keeps at most MAX_POLLERS idle threads and starts a new one whenever a
  // poller picks up a call; with the default (2) every burst of concurrent calls created and
  // destroyed threads (about one clone per two calls at 16 clients, measured with strace). Keep
  // enough threads for every token session plus as many callers waiting for one.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              static_cast<int>(std::clamp<std::size_t>(2 * options.sessions, 4, 64)));
  builder.RegisterService(v1.get());
  builder.RegisterService(v1alpha1.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Internal("cannot start the gRPC server");

  // Health: "" is the process (always SERVING while it runs); the two API services follow the token.
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus("", true);
    keys->SetStateListener([health](bool up) {
      health->SetServingStatus(V1Api::kService, up);
      health->SetServingStatus(V1Alpha1Api::kService, up);
    });
  }

  PeerPolicy policy{options.allow_uids, options.allow_gids};
  Acceptor acceptor(listener, policy, options.max_connections, options.max_connections_per_uid, *server, metrics,
                    logger);
  acceptor.Start();
  std::unique_ptr<MetricsHttpServer> metrics_server;
  if (metrics_listener) {
    metrics_server = std::make_unique<MetricsHttpServer>(std::move(*metrics_listener), metrics, logger);
    metrics_server->Start();
  }
  logger.Log(LogLevel::kInfo, "serving",
             {{"socket", options.socket},
              {"socket_mode", IsAbstractSocket(options.socket) ? "abstract" : (mode == 0660 ? "0660" : "0600")},
              {"allow_uids", JoinIds({options.allow_uids.begin(), options.allow_uids.end()})},
              {"allow_gids", JoinIds({options.allow_gids.begin(), options.allow_gids.end()})},
              {"apis", "v1,v1alpha1"},
              {"sessions", std::to_string(options.sessions)},
              {"max_connections", std::to_string(options.max_connections)},
              {"max_connections_per_uid", std::to_string(options.max_connections_per_uid)},
              {"max_token_expiration_seconds", std::to_string(options.max_token_expiration_seconds)},
              {"refresh_hint_seconds", std::to_string(options.refresh_hint_seconds)},
              {"metrics", !options.metrics_socket.empty() ? options.metrics_socket
                          : options.metrics_port != 0     ? "127.0.0.1:" + std::to_string(options.metrics_port)
                                                          : "off"}});

  int stop_signal = 0;
  while (stop_signal == 0) {
    pollfd p{signals.fd(), POLLIN, 0};
    const int n = ::poll(&p, 1, -1);
    if (n < 0 && errno != EINTR) return Internal("poll on the signalfd: " + ErrnoText(errno));
    for (int sig = signals.Read(); sig != 0; sig = signals.Read()) {
      if (sig == SIGHUP) {
        logger.Log(LogLevel::kInfo, "sighup", {});
        keys->RequestReload();
      } else {
        stop_signal = sig;
      }
    }
  }

  // Graceful shutdown: no new connections, in-flight calls get the grace period to finish.
  logger.Log(LogLevel::kInfo, "shutting_down", {{"signal", stop_signal == SIGTERM ? "SIGTERM" : "SIGINT"},
                                                {"grace_seconds", std::to_string(options.shutdown_grace_seconds)}});
  acceptor.Stop();
  listener.Close();
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(options.shutdown_grace_seconds);
  server->Shutdown(deadline);
  server->Wait();
  if (metrics_server) metrics_server->Stop();
  keys.reset();
  logger.Log(LogLevel::kInfo, "stopped", {});
  return OkStatus();
}

}  // namespace kubehsm::service
