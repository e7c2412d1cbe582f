#include "service/key_manager.h"

#include <algorithm>
#include <utility>

#include "service/claims_check.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/sa_keys.h"

namespace kubehsm::service {

// A signing key with its kid and the backend it signs through; immutable, shared by in-flight
// Sign calls. Members are destroyed in reverse order: the key before the backend that owns its
// provider context.
struct KeyManager::LoadedKey {
  std::shared_ptr<SignerBackend> backend;
  signer::SigningKey key;
  std::string kid;
};

// What one read of the token yields.
struct KeyManager::Snapshot {
  std::string fingerprint;
  std::vector<PublishedKeySet::Key> published;
  std::shared_ptr<const LoadedKey> active;  // null: see active_error
  Status active_error;
  int64_t newest_since = 0;  // the latest label time ("since") among the published keys
};

namespace {

using Clock = std::chrono::steady_clock;

// FetchKeys' data_timestamp, derived from what the token holds so that every process reading the
// same token (a restarted serve, two serves on one shared token) reports the same value for the
// same set: the seconds are the newest label time of a published key (a key's creation, import or
// last state change, recorded in its label), the nanoseconds an FNV-1a digest of the published
// kids and exclusion flags, so a key that disappears changes it as well.
std::pair<int64_t, int32_t> DataTimestamp(const std::vector<PublishedKeySet::Key>& keys, int64_t newest_since) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  for (const auto& k : keys) {  // sorted by kid
    mix(k.kid);
    mix(k.exclude_from_oidc ? "+" : "-");
  }
  return {newest_since, static_cast<int32_t>(h % 1000000000ull)};
}

}  // namespace

KeyManager::KeyManager(Private, BackendFactory factory, KeyManagerOptions options, Logger& logger, Metrics& metrics)
    : factory_(std::move(factory)),
      options_(std::move(options)),
      logger_(logger),
      metrics_(metrics),
      sessions_(static_cast<std::ptrdiff_t>(std::clamp<std::size_t>(options_.sessions, 1, 1024))) {}

Result<std::unique_ptr<KeyManager>> KeyManager::Start(BackendFactory factory, KeyManagerOptions options,
                                                      Logger& logger, Metrics& metrics) {
  if (options.sessions < 1 || options.sessions > 1024) return InvalidArgument("sessions must be 1..1024");
  auto m = std::make_unique<KeyManager>(Private{}, std::move(factory), std::move(options), logger, metrics);
  KH_ASSIGN_OR_RETURN(std::unique_ptr<SignerBackend> opened, m->factory_());
  std::shared_ptr<SignerBackend> backend(std::move(opened));
  KH_ASSIGN_OR_RETURN(Snapshot snap, m->Load(backend));
  if (!snap.active) return snap.active_error;
  for (const auto& kid : m->options_.exclude_from_oidc) {
    const bool present = std::any_of(snap.published.begin(), snap.published.end(),
                                     [&](const PublishedKeySet::Key& k) { return k.kid == kid; });
    if (!present) logger.Log(LogLevel::kWarn, "exclude_unknown_kid", {{"kid", kid}});
  }
  (void)m->Install(backend, std::move(snap), /*recovering=*/true);  // first install: nothing to keep
  m->thread_ = std::thread([p = m.get()] { p->Run(); });
  return m;
}

KeyManager::~KeyManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  active_.reset();
  retiring_.reset();
  backend_.reset();
}

Result<KeyManager::Snapshot> KeyManager::Load(const std::shared_ptr<SignerBackend>& backend) {
  KH_ASSIGN_OR_RETURN(std::vector<jwt::SaKeyInfo> listed, jwt::ListPublishedSaKeys(backend->store()));
  Snapshot snap;
  std::vector<std::string> labels;
  for (const auto& k : listed) {
    labels.push_back(k.label);
    if (k.state == jwt::SaKeyState::kIncomplete) continue;
    snap.newest_since = std::max(snap.newest_since, k.since);
    snap.published.push_back({k.kid, k.spki_der, options_.exclude_from_oidc.count(k.kid) != 0});
  }
  std::sort(labels.begin(), labels.end());
  for (const auto& l : labels) snap.fingerprint += l + "\n";
  std::sort(snap.published.begin(), snap.published.end(),
            [](const PublishedKeySet::Key& a, const PublishedKeySet::Key& b) {
              return a.kid != b.kid ? a.kid < b.kid : a.spki_der < b.spki_der;
            });
  if (snap.published.empty()) {
    snap.active_error = FailedPrecondition("the token holds no service-account keys");
    return snap;
  }

  auto active = jwt::FindActiveSaKey(backend->store());
  if (!active.ok()) {
    // No active key is a state of the token, not a failure of it; anything else is the token's.
    if (active.status().code() != StatusCode::kFailedPrecondition) return active.status();
    snap.active_error = active.status();
    return snap;
  }
  // Belt and braces: the kid we will put in headers is the kid of the key that signs.
  KH_ASSIGN_OR_RETURN(std::string derived, jwt::KidFromSpki(active->key.spki_der()));
  if (derived != active->kid) {
    snap.active_error = FailedPrecondition("active key label kid " + active->kid + " does not match its key (" +
                                           derived + ")");
    return snap;
  }
  if (options_.exclude_from_oidc.count(active->kid) != 0) {
    snap.active_error = FailedPrecondition("the active service-account key " + active->kid +
                                           " is excluded from OIDC discovery; kube-apiserver refuses tokens "
                                           "naming it (remove it from --exclude-from-oidc or activate another key)");
    return snap;
  }
  // One signature through the token, checked in software, before the key serves a request.
  static constexpr std::string_view kProbe = "kubehsm serve key self-test";
  KH_ASSIGN_OR_RETURN(std::string sig, active->key.Sign(kProbe));
  Status verified = signer::VerifySignature(active->key.public_key(), active->key.type(), kProbe, sig);
  if (!verified.ok()) return Internal("self-test signature of key " + active->kid + " does not verify");
  snap.active = std::make_shared<const LoadedKey>(LoadedKey{backend, std::move(active->key), active->kid});
  return snap;
}

bool KeyManager::Install(const std::shared_ptr<SignerBackend>& backend, Snapshot snap, bool recovering) {
  std::shared_ptr<const LoadedKey> previous;  // released outside the lock
  bool changed = false;
  bool ignored = false;
  std::shared_ptr<const PublishedKeySet> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!recovering && backend_ != backend) return false;  // the backend went down while we read it
    if (keys_ && !keys_->keys.empty() && snap.published.empty()) {
      // A token that suddenly lists no key at all is a token that errs (a signer always has one),
      // not a reason to tell kube-apiserver that every token it issued is unverifiable: nothing
      // changes (published set, signing key, label fingerprint), and the next poll reads again.
      ignored = true;
      keys = keys_;
    } else {
      if (recovering) {
        backend_ = backend;
        down_ = false;
      }
      const auto [stamp_seconds, stamp_nanos] = DataTimestamp(snap.published, snap.newest_since);
      changed = !keys_ || keys_->keys != snap.published || keys_->data_timestamp_seconds != stamp_seconds ||
                keys_->data_timestamp_nanos != stamp_nanos;
      if (changed) {
        auto set = std::make_shared<PublishedKeySet>();
        set->keys = std::move(snap.published);
        set->data_timestamp_seconds = stamp_seconds;
        set->data_timestamp_nanos = stamp_nanos;
        keys_ = std::move(set);
      }
      keys = keys_;
      previous = std::exchange(active_, snap.active);
      active_error_ = snap.active ? OkStatus() : snap.active_error;
      fingerprint_ = std::move(snap.fingerprint);
    }
  }
  if (ignored) {
    logger_.Log(LogLevel::kError, "empty_key_set_ignored",
                {{"published", std::to_string(keys->keys.size())},
                 {"detail", "the token listed no service-account key; the last good set stays published"}});
    return false;
  }
  metrics_.RecordKeyReload();
  metrics_.SetPublishedKeys(keys->keys.size(), keys->data_timestamp_seconds);
  if (snap.active) {
    logger_.Log(LogLevel::kInfo, "keys_loaded",
                {{"active_kid", snap.active->kid},
                 {"alg", std::string(jwt::JwsAlgorithmName(jwt::JwsAlgorithmFor(snap.active->key.type())))},
                 {"published", std::to_string(keys->keys.size())},
                 {"key_set_changed", changed ? "true" : "false"},
                 {"data_timestamp", std::to_string(keys->data_timestamp_seconds)}});
  } else {
    logger_.Log(LogLevel::kError, "no_usable_active_key",
                {{"reason", snap.active_error.message()}, {"published", std::to_string(keys->keys.size())}});
  }
  if (recovering) {
    metrics_.SetBackendUp(true);
    NotifyState(true);
  }
  return true;
}

void KeyManager::MarkDown(const std::shared_ptr<SignerBackend>& backend, const Status& reason) {
  std::shared_ptr<const LoadedKey> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_ || backend_ != backend) return;  // someone else already did
    dropped = std::move(active_);
    retiring_ = std::move(backend_);
    down_ = true;
    backoff_ = options_.backoff_initial;
    next_attempt_ = Clock::now();
  }
  consecutive_failures_ = 0;
  logger_.Log(LogLevel::kError, "backend_down", {{"reason", reason.message()}});
  metrics_.RecordBackendDown();
  metrics_.SetBackendUp(false);
  NotifyState(false);
  cv_.notify_all();
}

void KeyManager::HandleBackendError(const std::shared_ptr<SignerBackend>& backend, const Status& error,
                                    std::string_view what) {
  Status health = backend->CheckHealth();
  if (!health.ok()) {
    MarkDown(backend, health.WithContext(std::string(what)));
    return;
  }
  logger_.Log(LogLevel::kError, "key_reload_failed", {{"step", std::string(what)}, {"error", error.message()}});
}

Result<SignResult> KeyManager::Sign(std::string_view claims_b64url) {
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  KH_RETURN_IF_ERROR(CheckSignClaims(claims_b64url, now, options_.max_token_expiration_seconds));
  std::shared_ptr<const LoadedKey> key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return Unavailable("the token is unavailable; kubehsm is re-opening it in the background");
    if (!active_) return active_error_;
    key = active_;
  }
  if (!sessions_.try_acquire_for(options_.session_wait)) {
    return Unavailable("all " + std::to_string(options_.sessions) + " token sessions stayed busy");
  }
  auto parts = jwt::SignEncodedClaims(key->key, key->kid, claims_b64url);
  sessions_.release();
  if (parts.ok()) {
    consecutive_failures_.store(0, std::memory_order_relaxed);
    return SignResult{std::move(parts->header), std::move(parts->signature), key->kid};
  }
  Status health = key->backend->CheckHealth();
  if (!health.ok()) {
    MarkDown(key->backend, health.WithContext("signing failed (" + parts.status().message() + ")"));
    return Unavailable("the token is unavailable (" + health.message() + "); kubehsm is re-opening it");
  }
  if (consecutive_failures_.fetch_add(1) + 1 >= options_.failures_before_reopen) {
    MarkDown(key->backend, parts.status().WithContext(std::to_string(options_.failures_before_reopen) +
                                                      " signing failures in a row"));
  }
  return Unavailable("signing in the token failed: " + parts.status().message());
}

std::shared_ptr<const PublishedKeySet> KeyManager::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

void KeyManager::RequestReload() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reload_requested_ = true;
  }
  cv_.notify_all();
}

bool KeyManager::backend_up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !down_;
}

void KeyManager::SetStateListener(std::function<void(bool up)> listener) {
  bool up;
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_listener_ = std::move(listener);
    up = !down_;
  }
  NotifyState(up);
}

void KeyManager::NotifyState(bool up) {
  std::function<void(bool)> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener = state_listener_;
  }
  if (listener) listener(up);
}

void KeyManager::Poll(bool force) {
  std::shared_ptr<SignerBackend> backend;
  std::string fingerprint;
  {
    std::lock_guard<std::mutex> lock(mu_);
    backend = backend_;
    fingerprint = fingerprint_;
  }
  if (!backend) return;
  if (!force) {
    // The cheap check: one listing of the SA key labels; the keys are loaded only on a change.
    auto listed = jwt::ListPublishedSaKeys(backend->store());
    if (!listed.ok()) {
      HandleBackendError(backend, listed.status(), "listing keys");
      return;
    }
    std::vector<std::string> labels;
    for (const auto& k : listed.value()) labels.push_back(k.label);
    std::sort(labels.begin(), labels.end());
    std::string now;
    for (const auto& l : labels) now += l + "\n";
    if (now == fingerprint) return;
    logger_.Log(LogLevel::kInfo, "key_labels_changed", {});
  } else {
    logger_.Log(LogLevel::kInfo, "reload_requested", {});
  }
  auto snap = Load(backend);
  if (!snap.ok()) {
    HandleBackendError(backend, snap.status(), "loading keys");
    return;
  }
  (void)Install(backend, std::move(snap).value(), /*recovering=*/false);  // logs when it keeps the old set
}

bool KeyManager::TryRecover() {
  std::shared_ptr<SignerBackend> old;
  std::chrono::milliseconds backoff;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(retiring_);
    backoff = backoff_;
  }
  if (old) {
    // The failed backend (module, token, provider) is destroyed here, by this thread, once no
    // in-flight call still uses it; only then may the module be initialised again.
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (old.use_count() > 1 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (old.use_count() > 1) {
      logger_.Log(LogLevel::kError, "backend_still_in_use", {{"users", std::to_string(old.use_count() - 1)}});
      std::lock_guard<std::mutex> lock(mu_);
      retiring_ = std::move(old);
      return false;
    }
    old.reset();
  }
  auto opened = factory_();
  if (!opened.ok() && opened.status().code() == StatusCode::kUnauthenticated) {
    // A refused PIN: retrying on a timer could lock the token (every retry is one C_Login). Wait
    // for an operator to fix the PIN source and send SIGHUP.
    logger_.Log(LogLevel::kError, "backend_reopen_paused",
                {{"error", opened.status().message()}, {"resume", "fix the PIN source, then send SIGHUP"}});
    std::lock_guard<std::mutex> lock(mu_);
    recovery_paused_ = true;
    return false;
  }
  if (!opened.ok()) {
    logger_.Log(LogLevel::kWarn, "backend_reopen_failed", {{"error", opened.status().message()},
                                                           {"retry_in_ms", std::to_string(backoff.count())}});
    return false;
  }
  std::shared_ptr<SignerBackend> backend(std::move(opened).value());
  auto snap = Load(backend);
  if (!snap.ok()) {
    logger_.Log(LogLevel::kWarn, "backend_reopen_failed", {{"error", snap.status().message()},
                                                           {"retry_in_ms", std::to_string(backoff.count())}});
    return false;
  }
  if (!Install(backend, std::move(snap).value(), /*recovering=*/true)) return false;  // retried with backoff
  metrics_.RecordBackendRecovery();
  logger_.Log(LogLevel::kInfo, "backend_recovered", {});
  return true;
}

void KeyManager::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  auto next_poll = Clock::now() + options_.poll_interval;
  while (!stop_) {
    if (down_) {
      if (recovery_paused_) {
        cv_.wait(lock, [&] { return stop_ || reload_requested_; });
        if (stop_) break;
        reload_requested_ = false;
        recovery_paused_ = false;
        next_attempt_ = Clock::now();
        backoff_ = options_.backoff_initial;
        continue;
      }
      cv_.wait_until(lock, next_attempt_, [&] { return stop_; });
      if (stop_) break;
      if (Clock::now() < next_attempt_) continue;
      lock.unlock();
      const bool ok = TryRecover();
      lock.lock();
      if (!ok) {
        next_attempt_ = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, options_.backoff_max);
      } else {
        next_poll = Clock::now() + options_.poll_interval;
      }
      continue;
    }
    cv_.wait_until(lock, next_poll, [&] { return stop_ || down_ || reload_requested_; });
    if (stop_) break;
    if (down_) continue;
    const bool force = std::exchange(reload_requested_, false);
    if (force || Clock::now() >= next_poll) {
      lock.unlock();
      Poll(force);
      lock.lock();
      next_poll = Clock::now() + options_.poll_interval;
    }
  }
}

}  // namespace kubehsm::service
