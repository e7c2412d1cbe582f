// Helpers for the `kubehsm serve` end-to-end tests: a long-running child process killed at the end
// of the test, a gRPC client for both API versions, kube-apiserver-style claims and token assembly,
// and an independent verifier (plain OpenSSL, no kubehsm code) for the assembled tokens.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

namespace kubehsm::testing {

// `argv` running in the background with stderr (and stdout) appended to `log_file`. The destructor
// sends SIGKILL if it still runs and reaps it: no child outlives its test.
class ChildProcess final {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               std::filesystem::path log_file);
  ChildProcess(const ChildProcess&) = delete;  // one owner reaps the child
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it when it has).
  bool Running();
  // Sends `sig`, waits up to `timeout` for the exit, then SIGKILLs. Returns the exit code
  // (128+signal when killed by a signal).
  int Stop(int sig, std::chrono::milliseconds timeout);
  // Waits up to `timeout` for the child to exit by itself; -1 if it is still running.
  int WaitExit(std::chrono::milliseconds timeout);
  void Signal(int sig);
  std::string Log() const;
  // Waits until the log contains `text` (true) or the child exits / `timeout` passes (false).
  bool WaitForLog(const std::string& text, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::filesystem::path log_file_;
};

// The gRPC target for a socket address: "unix:/path" or "unix-abstract:name".
std::string GrpcTarget(const std::string& socket);

// Result of one RPC: the gRPC status and the response fields this suite looks at.
struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  // Sign
  std::string header, signature;
  // FetchKeys
  struct Key {
    std::string kid, der;
    bool exclude = false;
  };
  std::vector<Key> keys;
  int64_t data_timestamp_seconds = 0;
  int32_t data_timestamp_nanos = 0;
  int64_t refresh_hint_seconds = 0;
  // Metadata
  int64_t max_token_expiration_seconds = 0;
};

// A client for one API version ("v1" or "v1alpha1") over one channel (authority "localhost",
// as kube-apiserver sets it).
class SignerClient final {
 public:
  SignerClient(const std::string& socket, const std::string& api);
  CallResult Sign(const std::string& claims, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  CallResult FetchKeys(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  CallResult Metadata(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // grpc.health.v1.Health/Check for `service`; returns the status enum value (1 = SERVING) or -1.
  int HealthCheck(const std::string& service);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string api_;
};

// Bound-token claims as kube-apiserver builds them (spec §3.3), compact JSON, base64url unpadded.
std::string MakeClaims(const std::string& issuer, const std::string& audience, int64_t lifetime_seconds = 3600);

// Verifies `token` (header.claims.signature) against the FetchKeys keys with plain OpenSSL:
// header JSON exactly {alg, kid, typ:"JWT"}, kid listed and not excluded, alg matching the key,
// RS256 PKCS#1 v1.5 or ES* raw r‖s. Returns "" when it verifies, else the reason.
std::string VerifyWithOpenSsl(const std::string& token, const std::vector<CallResult::Key>& keys);

// Verifies each token (and three one-character tamperings of it, one per segment, which must
// fail) with PyJWT against a JWKS built by python-cryptography from the FetchKeys DER keys.
// Returns "" on success, else the script's output.
std::string VerifyWithPyJwt(const std::vector<std::string>& tokens, const std::vector<CallResult::Key>& keys,
                            const std::string& issuer, const std::string& audience,
                            const std::filesystem::path& work_dir);

// The gRPC code name ("OK", "UNAVAILABLE", ...).
std::string CodeName(grpc::StatusCode code);

}  // namespace kubehsm::testing
