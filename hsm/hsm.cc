#include "hsm/hsm.h"

#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "hsm/token_store.h"

namespace kubehsm::hsm {

Result<std::unique_ptr<Hsm>> Hsm::Open(const HsmOptions& options, OpenStep* failed_step) {
  OpenStep unused = OpenStep::kNone;
  OpenStep& step = failed_step != nullptr ? *failed_step : unused;
  step = OpenStep::kModule;
  KH_ASSIGN_OR_RETURN(Pkcs11Uri uri, Pkcs11Uri::Parse(options.token_uri.empty() ? "pkcs11:" : options.token_uri));
  std::string module_path = options.module_path;
  if (module_path.empty() && uri.module_path) module_path = *uri.module_path;
  KH_ASSIGN_OR_RETURN(std::unique_ptr<Module> module, Module::Load(module_path, options.module_init_args));
  step = OpenStep::kToken;
  KH_ASSIGN_OR_RETURN(TokenInfo info, module->FindToken(uri));
  if (options.on_token_selected) options.on_token_selected(info);
  Token::Options topts;
  topts.max_idle_sessions = options.sessions;
  topts.require_cka_local = !options.allow_keys_without_cka_local;
  std::unique_ptr<Token> token;
  if (options.pin != nullptr) {
    KH_RETURN_IF_ERROR(ProtectProcessMemory());
    step = OpenStep::kLogin;
    KH_ASSIGN_OR_RETURN(token, Token::Open(*module, info, *options.pin, topts));
  } else {
    step = OpenStep::kPinSource;
    std::string source_text = options.pin_source;
    if (source_text.empty() && uri.pin_source) source_text = *uri.pin_source;
    if (source_text.empty()) source_text = "prompt";
    KH_ASSIGN_OR_RETURN(PinSource source, PinSource::Parse(source_text));
    KH_ASSIGN_OR_RETURN(Pin pin, ReadPin(source, "PIN for token '" + info.label + "': "));
    step = OpenStep::kLogin;
    KH_ASSIGN_OR_RETURN(token, Token::Open(*module, info, pin, topts));
  }  // a PIN read here is wiped here
  // SoftHSM on a read-only token store accepts the login, but its write at login fails and the
  // token stops answering C_GetTokenInfo; pkcs11-provider then finds no token and every later
  // failure is obscure ("no private key at ..."). Say what is wrong here, once.
  // (C_GetTokenInfo takes the slot, not a session: the check does not touch the login session.)
  step = OpenStep::kToken;
  CK_TOKEN_INFO after_login{};
  if (module->fn()->C_GetTokenInfo(info.slot_id, &after_login) != CKR_OK) {
    if (std::string why = ReadOnlyTokenStoreReason(*module); !why.empty()) {
      return Unavailable(why + ": SoftHSM writes its token files at login and when keys are used, so token '" +
                                info.label + "' cannot be used; make the directory writable (under systemd, " +
                                "name it in ReadWritePaths=)");
    }
  }
  step = OpenStep::kProvider;
  KH_ASSIGN_OR_RETURN(std::unique_ptr<ProviderBridge> bridge,
                      ProviderBridge::Create(module->path(), module->init_args(), static_cast<int>(options.sessions)));
  step = OpenStep::kNone;
  return std::make_unique<Hsm>(Private{}, std::move(module), std::move(token), std::move(bridge));
}

Hsm::~Hsm() {
  bridge_.reset();
  token_.reset();
  module_.reset();
}

Result<EvpPkeyPtr> Hsm::LoadPrivateKey(const KeyInfo& key) {
  if (!key.has_private()) return FailedPrecondition("key '" + key.label + "' has no private half in the token");
  const std::string uri = token_->KeyUri(key);
  auto pkey = bridge_->LoadPrivateKey(uri);
  // `key` was just listed by this process's own session, so "not found" through the provider's
  // session is transient: SoftHSM re-reads its token directory when another process changed it
  // (a login updates the token file), and a lookup during that window finds nothing. Seen with
  // two concurrent signing processes on one SoftHSM token. Look again a few times before failing.
  for (int delay_ms : {5, 20, 80, 200}) {
    if (pkey.ok() || pkey.status().code() != StatusCode::kNotFound) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    pkey = bridge_->LoadPrivateKey(uri);
  }
  if (!pkey.ok()) {
    // The store may have become read-only after Open (a remount): name that instead of the
    // provider's empty error queue.
    if (std::string why = ReadOnlyTokenStoreReason(*module_); !why.empty()) {
      return Unavailable(why + ": key '" + key.label + "' cannot be used through pkcs11-provider (" +
                                pkey.status().message() + ")");
    }
  }
  return pkey;
}

}  // namespace kubehsm::hsm
