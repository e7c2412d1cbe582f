// The hsm layer's front door: a module, one logged-in token and the pkcs11-provider bridge,
// owned together and torn down in the only safe order (provider, then sessions, then module).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "common/status.h"
#include "hsm/module.h"
#include "hsm/pin.h"
#include "hsm/provider_bridge.h"
#include "hsm/token.h"
#include "hsm/uri.h"

namespace kubehsm::hsm {

struct HsmOptions {
  std::string module_path;    // PKCS#11 module; overrides the URI's module-path
  std::string token_uri;      // "pkcs11:token=..." (may carry module-path and pin-source)
  std::string pin_source;     // overrides the URI's pin-source; "" and none in the URI = prompt
  std::size_t sessions = 16;  // idle session pool size for the raw token and the provider
  std::string module_init_args;  // C_Initialize pReserved string ("" for none), e.g. for NSS softokn
  // Accept keys whose CKA_LOCAL reads false (tokens such as NSS softokn never set it): weaker
  // provenance, an explicit opt-in of the config file.
  bool allow_keys_without_cka_local = false;
  // A PIN read earlier, used instead of pin_source (borrowed; `kubehsm serve` keeps an env: PIN,
  // which ReadPin removes from the environment, to re-open the token after a failure).
  const Pin* pin = nullptr;
  // Called once the URI has selected a token, before the PIN is read and before C_Login, so a
  // caller can say which slot and token it is about to log in to even when the login fails.
  std::function<void(const TokenInfo&)> on_token_selected;
};

// The step of Hsm::Open that failed, so a caller can tell a PIN that could not be read (no
// C_Login was attempted) from a login the token refused.
enum class OpenStep { kNone, kModule, kToken, kPinSource, kLogin, kProvider };

class Hsm final {
 public:
  // Loads the module, finds the token, reads the PIN from its source (wiped right after C_Login)
  // and logs in, then starts the provider bridge. Every failure names module, token and step;
  // `failed_step`, when given, is set to the step that failed (kNone on success).
  static Result<std::unique_ptr<Hsm>> Open(const HsmOptions& options, OpenStep* failed_step = nullptr);

  Hsm(const Hsm&) = delete;  // owns the module lifecycle
  Hsm& operator=(const Hsm&) = delete;
  ~Hsm();

  Module& module() { return *module_; }
  Token& token() { return *token_; }
  ProviderBridge& bridge() { return *bridge_; }

  // An EVP_PKEY for `key`'s private half, signing in the token through pkcs11-provider.
  Result<EvpPkeyPtr> LoadPrivateKey(const KeyInfo& key);

 private:
  struct Private {};

 public:
  Hsm(Private, std::unique_ptr<Module> m, std::unique_ptr<Token> t, std::unique_ptr<ProviderBridge> b)
      : module_(std::move(m)), token_(std::move(t)), bridge_(std::move(b)) {}

 private:
  // Declaration order is destruction order reversed: bridge first, module last.
  std::unique_ptr<Module> module_;
  std::unique_ptr<Token> token_;
  std::unique_ptr<ProviderBridge> bridge_;
};

}  // namespace kubehsm::hsm
