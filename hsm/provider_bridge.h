// pkcs11-provider in a private OSSL_LIB_CTX: turns token keys into OpenSSL EVP_PKEYs that sign
// certificates and JWTs inside the token. Shares the module instance and the login state of the
// raw Token (pkcs11-provider dlopens the same module), so it never needs the PIN.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "common/ssl_ptr.h"
#include "common/status.h"

namespace kubehsm::hsm {

class ProviderBridge final {
 public:
  // Creates a private library context with the `default` provider and pkcs11-provider configured
  // for `module_path` and its C_Initialize arguments `init_args` ("" for none; the provider's
  // pkcs11-module-init-args), with quirk no-deinit (freeing the context never finalizes the module
  // under the raw code) and session cache `cache_sessions`. Fails loudly when the provider is not
  // installed.
  static Result<std::unique_ptr<ProviderBridge>> Create(const std::string& module_path, const std::string& init_args,
                                                        int cache_sessions);

  ProviderBridge(const ProviderBridge&) = delete;  // owns the library context
  ProviderBridge& operator=(const ProviderBridge&) = delete;
  ~ProviderBridge() = default;

  OSSL_LIB_CTX* libctx() const { return libctx_.get(); }

  // Loads the private key named by `uri` (a full "pkcs11:...;type=private" URI). The token must
  // already be logged in by the raw layer: the provider is never given a PIN and never prompts.
  Result<EvpPkeyPtr> LoadPrivateKey(const std::string& uri);

 private:
  struct Private {};

 public:
  ProviderBridge(Private, OsslLibCtxPtr ctx) : libctx_(std::move(ctx)) {}

 private:
  OsslLibCtxPtr libctx_;
};

}  // namespace kubehsm::hsm
