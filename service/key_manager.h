// The signer daemon's view of the service-account keys: the cached active signing key, the
// published key set (FetchKeys), change detection against the token, and recovery when the token
// fails.
//
// Threading: Sign, Keys and Metadata-style reads are called from many gRPC threads; they take a
// snapshot (shared_ptr) under a short mutex and never touch the token except for the signature
// itself. One maintenance thread owns everything slow: polling the SA key labels every
// poll_interval (or at once on RequestReload, i.e. SIGHUP) and re-opening the backend with
// exponential backoff after a failure (except after a refused PIN: each retry would be one more
// C_Login towards locking the token, so recovery then waits for SIGHUP). Because the key and its kid live in one immutable
// LoadedKey, a signature can never carry another key's kid, whatever reload or recovery runs
// concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <semaphore>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/signer_backend.h"
#include "signer/signing_key.h"

namespace kubehsm::service {

struct KeyManagerOptions {
  // kids published with exclude_from_oidc_discovery = true (verify-only keys).
  std::set<std::string> exclude_from_oidc;
  // How often the SA key labels are re-read from the token (one object search per interval).
  std::chrono::milliseconds poll_interval{std::chrono::seconds(10)};
  // Concurrent signatures (the token session pool size). At most 1024.
  std::size_t sessions = 8;
  // Wait for a free session before answering UNAVAILABLE.
  std::chrono::milliseconds session_wait{std::chrono::seconds(10)};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(5)};
  // Signing failures in a row (with a healthy token) before the backend is re-opened anyway.
  int failures_before_reopen = 3;
  // The longest token lifetime (exp - iat) Sign accepts: Metadata's max_token_expiration_seconds.
  int64_t max_token_expiration_seconds = 86400;
};

// What FetchKeys returns; immutable once published.
struct PublishedKeySet {
  struct Key {
    std::string kid;
    std::string spki_der;
    bool exclude_from_oidc = false;
    bool operator==(const Key&) const = default;
  };
  std::vector<Key> keys;  // sorted by kid, so the order does not depend on key states
  // Derived from the token, not from when this process read it, so it is the same after a
  // restart and in every serve on the same token: seconds = the newest label time ("since") of a
  // published key, nanos = a digest of the published kids and exclusion flags. It changes when a
  // key is created, imported, removed, stops being published, or changes state.
  int64_t data_timestamp_seconds = 0;
  int32_t data_timestamp_nanos = 0;
};

// The first and third JWT segments and the kid of the key that made the signature.
struct SignResult {
  std::string header;
  std::string signature;
  std::string kid;
};

class KeyManager final {
 public:
  // Opens the backend with `factory`, loads the keys and starts the maintenance thread. Fails
  // (and the daemon does not start) when the backend cannot be opened, the keys cannot be read,
  // there is no usable active key, or the active key is excluded from OIDC discovery.
  // `logger` and `metrics` are borrowed and must outlive the manager.
  static Result<std::unique_ptr<KeyManager>> Start(BackendFactory factory, KeyManagerOptions options,
                                                   Logger& logger, Metrics& metrics);

  KeyManager(const KeyManager&) = delete;  // owns a thread and the backend
  KeyManager& operator=(const KeyManager&) = delete;
  // Stops the maintenance thread, then releases the key and the backend (in that order).
  ~KeyManager();

  // Signs base64url claims verbatim with the active key, after CheckSignClaims (claims_check.h)
  // with options.max_token_expiration_seconds: kInvalidArgument for claims kube-apiserver would
  // never send (not base64url JSON, too large or deep, duplicate members, missing registered
  // claims, a lifetime over the maximum); kUnavailable while the token is down (at once, without
  // touching the token) or when signing failed; kFailedPrecondition when the token holds no usable
  // active key.
  Result<SignResult> Sign(std::string_view claims_b64url);

  // The published key set (never null; survives a backend outage unchanged). A read of the token
  // that fails, or that lists no key at all, never replaces it: the last good set stays published
  // and the poll retries.
  std::shared_ptr<const PublishedKeySet> Keys() const;

  // Re-reads the keys from the token now (SIGHUP), even if the labels look unchanged.
  void RequestReload();

  bool backend_up() const;

  // Called (from the thread that noticed) whenever the backend goes down or comes back.
  void SetStateListener(std::function<void(bool up)> listener);

 private:
  struct LoadedKey;
  struct Snapshot;
  struct Private {};

 public:
  KeyManager(Private, BackendFactory factory, KeyManagerOptions options, Logger& logger, Metrics& metrics);

 private:
  Result<Snapshot> Load(const std::shared_ptr<SignerBackend>& backend);
  // Installs `snap` if `backend` is still current (or, with `recovering`, makes it current).
  // Returns false, changing nothing, when `backend` is no longer current or `snap` lists no key
  // while keys are published (a token error, never a reason to publish an empty set).
  bool Install(const std::shared_ptr<SignerBackend>& backend, Snapshot snap, bool recovering);
  void MarkDown(const std::shared_ptr<SignerBackend>& backend, const Status& reason);
  // After a failed read: checks the token's health and marks it down if it is gone.
  void HandleBackendError(const std::shared_ptr<SignerBackend>& backend, const Status& error, std::string_view what);
  void Poll(bool force);
  bool TryRecover();
  void Run();
  void NotifyState(bool up);

  BackendFactory factory_;
  const KeyManagerOptions options_;
  Logger& logger_;
  Metrics& metrics_;
  std::counting_semaphore<1024> sessions_;
  std::atomic<int> consecutive_failures_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<SignerBackend> backend_;   // null while down
  std::shared_ptr<const LoadedKey> active_;  // null while down or without a usable active key
  Status active_error_;                      // why active_ is null while the backend is up
  std::shared_ptr<const PublishedKeySet> keys_;
  std::string fingerprint_;  // the SA key labels last loaded
  std::shared_ptr<SignerBackend> retiring_;  // a failed backend, destroyed once unused
  bool down_ = false;
  bool stop_ = false;
  bool reload_requested_ = false;
  bool recovery_paused_ = false;  // the PIN was refused: no timed retries until SIGHUP
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_attempt_{};
  std::function<void(bool)> state_listener_;
  std::thread thread_;  // last: started after everything above exists
};

}  // namespace kubehsm::service
