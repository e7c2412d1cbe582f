#include "hsm/hsm.h"

#include <utility>

namespace kubehsm::hsm {

Result<std::unique_ptr<Hsm>> Hsm::Open(const HsmOptions& options) {
  KH_ASSIGN_OR_RETURN(Pkcs11Uri uri, Pkcs11Uri::Parse(options.token_uri.empty() ? "pkcs11:" : options.token_uri));
  std::string module_path = options.module_path;
  if (module_path.empty() && uri.module_path) module_path = *uri.module_path;
  KH_ASSIGN_OR_RETURN(std::unique_ptr<Module> module, Module::Load(module_path, options.module_init_args));
  KH_ASSIGN_OR_RETURN(TokenInfo info, module->FindToken(uri));
  if (options.on_token_selected) options.on_token_selected(info);
  Token::Options topts;
  topts.max_idle_sessions = options.sessions;
  topts.require_cka_local = !options.allow_keys_without_cka_local;
  std::unique_ptr<Token> token;
  if (options.pin != nullptr) {
    KH_RETURN_IF_ERROR(ProtectProcessMemory());
    KH_ASSIGN_OR_RETURN(token, Token::Open(*module, info, *options.pin, topts));
  } else {
    std::string source_text = options.pin_source;
    if (source_text.empty() && uri.pin_source) source_text = *uri.pin_source;
    if (source_text.empty()) source_text = "prompt";
    KH_ASSIGN_OR_RETURN(PinSource source, PinSource::Parse(source_text));
    KH_ASSIGN_OR_RETURN(Pin pin, ReadPin(source, "PIN for token '" + info.label + "': "));
    KH_ASSIGN_OR_RETURN(token, Token::Open(*module, info, pin, topts));
  }  // a PIN read here is wiped here
  KH_ASSIGN_OR_RETURN(std::unique_ptr<ProviderBridge> bridge,
                      ProviderBridge::Create(module->path(), module->init_args(), static_cast<int>(options.sessions)));
  return std::make_unique<Hsm>(Private{}, std::move(module), std::move(token), std::move(bridge));
}

Hsm::~Hsm() {
  bridge_.reset();
  token_.reset();
  module_.reset();
}

Result<EvpPkeyPtr> Hsm::LoadPrivateKey(const KeyInfo& key) {
  if (!key.has_private()) return FailedPrecondition("key '" + key.label + "' has no private half in the token");
  return bridge_->LoadPrivateKey(token_->KeyUri(key));
}

}  // namespace kubehsm::hsm
