#include "hsm/provider_bridge.h"

#include <utility>

#include <openssl/conf.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/ui.h>

#include "common/openssl_error.h"

namespace kubehsm::hsm {
namespace {

// A UI reader that refuses every prompt: the provider must never ask the terminal for a PIN.
int RefusePrompt(UI*, UI_STRING*) { return 0; }

// The one UI method kubehsm hands OpenSSL: it refuses every prompt. It is passed to every
// OSSL_STORE_open_ex, and it is also made the process default, because pkcs11-provider 1.0 has a
// second, own PIN prompt: when a key operation finds the token logged out and no PIN is configured
// (kubehsm never gives it one) it asks OpenSSL's *default* UI method, which reads the controlling
// terminal, so a signing thread of `kubehsm serve` started from a shell would block there. kubehsm
// itself never uses OpenSSL's UI (its own prompt is in hsm/pin.cc). Created once, before the first
// provider exists, and never freed: the process default keeps pointing at it. nullptr when OpenSSL
// could not allocate it.
UI_METHOD* RefusingUiMethod() {
  static UI_METHOD* const method = [] {
    UI_METHOD* m = UI_create_method("kubehsm: no PIN prompts");
    if (m == nullptr || UI_method_set_reader(m, RefusePrompt) != 0) {
      UI_destroy_method(m);
      return static_cast<UI_METHOD*>(nullptr);
    }
    UI_set_default_method(m);
    return m;
  }();
  return method;
}

bool SafeForConfig(const std::string& s) {
  for (char c : s) {
    if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '$' || c == '#') return false;
  }
  return !s.empty();
}

// A quoted OpenSSL config value (the caller checked SafeForConfig).
std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

Result<std::unique_ptr<ProviderBridge>> ProviderBridge::Create(const std::string& module_path,
                                                               const std::string& init_args, int cache_sessions) {
  if (!SafeForConfig(module_path)) {
    return InvalidArgument("module path contains characters not allowed in an OpenSSL config value: " + module_path);
  }
  if (!init_args.empty() && !SafeForConfig(init_args)) {
    return InvalidArgument("module-init-args contains characters not allowed in an OpenSSL config value "
                           "(double quote, backslash, $ or #)");
  }
  if (RefusingUiMethod() == nullptr) return OpenSslError("UI_create_method");
  const char* modules_dir = OPENSSL_info(OPENSSL_INFO_MODULES_DIR);
  const std::string provider_so = std::string(modules_dir != nullptr ? modules_dir : "") + "/pkcs11.so";
  OsslLibCtxPtr ctx(OSSL_LIB_CTX_new());
  if (!ctx) return OpenSslError("OSSL_LIB_CTX_new");
  const std::string conf_text =
      "kubehsm_conf = kubehsm_init\n"
      "[kubehsm_init]\n"
      "providers = kubehsm_providers\n"
      "[kubehsm_providers]\n"
      "default = kubehsm_default\n"
      "pkcs11 = kubehsm_pkcs11\n"
      "[kubehsm_default]\n"
      "activate = 1\n"
      "[kubehsm_pkcs11]\n"
      "module = \"" +
      provider_so +
      "\"\n"
      "pkcs11-module-path = \"" +
      module_path +
      "\"\n" +
      (init_args.empty() ? std::string() : "pkcs11-module-init-args = " + Quoted(init_args) + "\n") +
      "pkcs11-module-quirks = no-deinit\n"
      "pkcs11-module-cache-sessions = " +
      std::to_string(cache_sessions) +
      "\n"
      "pkcs11-module-login-behavior = auto\n"
      "activate = 1\n";
  BioPtr bio(BIO_new_mem_buf(conf_text.data(), static_cast<int>(conf_text.size())));
  ConfPtr conf(NCONF_new_ex(ctx.get(), nullptr));
  long err_line = 0;
  if (!bio || !conf || NCONF_load_bio(conf.get(), bio.get(), &err_line) <= 0) {
    return OpenSslError("building the pkcs11-provider configuration");
  }
  if (CONF_modules_load(conf.get(), "kubehsm_conf", 0) <= 0) {
    return OpenSslError(StatusCode::kFailedPrecondition,
                        "loading pkcs11-provider (" + provider_so + "; is the pkcs11-provider package installed?)");
  }
  if (OSSL_PROVIDER_available(ctx.get(), "pkcs11") != 1) {
    return FailedPrecondition("pkcs11-provider did not activate (" + provider_so +
                              "); is the pkcs11-provider package installed?");
  }
  ERR_clear_error();  // loading may queue harmless noise (e.g. optional engines)
  return std::make_unique<ProviderBridge>(Private{}, std::move(ctx));
}

Result<EvpPkeyPtr> ProviderBridge::LoadPrivateKey(const std::string& uri) {
  OsslStoreCtxPtr store(OSSL_STORE_open_ex(uri.c_str(), libctx_.get(), "provider=pkcs11", RefusingUiMethod(), nullptr,
                                           nullptr, nullptr, nullptr));
  if (!store) return OpenSslError(StatusCode::kNotFound, "opening " + uri + " through pkcs11-provider");
  OSSL_STORE_expect(store.get(), OSSL_STORE_INFO_PKEY);
  EvpPkeyPtr key;
  while (!key && OSSL_STORE_eof(store.get()) == 0) {
    OsslStoreInfoPtr info(OSSL_STORE_load(store.get()));
    if (!info) {
      if (OSSL_STORE_error(store.get()) != 0) break;
      continue;
    }
    if (OSSL_STORE_INFO_get_type(info.get()) == OSSL_STORE_INFO_PKEY) key.reset(OSSL_STORE_INFO_get1_PKEY(info.get()));
  }
  if (!key) return OpenSslError(StatusCode::kNotFound, "no private key at " + uri + " through pkcs11-provider");
  ERR_clear_error();
  return key;
}

}  // namespace kubehsm::hsm
