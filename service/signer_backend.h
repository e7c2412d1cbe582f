// What the signer daemon needs from wherever the service-account keys live: a KeyStore (keys by
// label, signing through the token) and a health probe. cli/ implements it over an open PKCS#11
// token (hsm::Hsm); the service never includes a PKCS#11 header.
#pragma once

#include <functional>
#include <memory>

#include "common/status.h"
#include "signer/key_store.h"

namespace kubehsm::service {

class SignerBackend {
 public:
  virtual ~SignerBackend() = default;

  // The keys; valid for the backend's lifetime. Thread-safe as KeyStore implementations are.
  virtual signer::KeyStore& store() = 0;

  // OK when the device is present and this process is still logged in; kUnavailable when the
  // device is gone or errs, kUnauthenticated when the login was lost. Cheap; thread-safe.
  virtual Status CheckHealth() = 0;
};

// Opens a fresh backend (e.g. module + token + login). Called at start and again, with backoff,
// after the previous backend failed; must never prompt.
using BackendFactory = std::function<Result<std::unique_ptr<SignerBackend>>()>;

}  // namespace kubehsm::service
