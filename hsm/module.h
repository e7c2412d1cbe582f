// A loaded PKCS#11 module (dlopen + C_GetFunctionList + C_Initialize) and its slots/tokens.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "hsm/pin.h"
#include "hsm/pkcs11.h"
#include "hsm/uri.h"

namespace kubehsm::hsm {

// What a token says about itself (CK_TOKEN_INFO with blank padding trimmed).
struct TokenInfo {
  CK_SLOT_ID slot_id = 0;
  std::string label;
  std::string manufacturer;
  std::string model;
  std::string serial;
  CK_FLAGS flags = 0;
  CK_ULONG min_pin_len = 0;  // ulMinPinLen / ulMaxPinLen: the PIN lengths the token accepts
  CK_ULONG max_pin_len = 0;
  bool initialized() const { return (flags & CKF_TOKEN_INITIALIZED) != 0; }
  bool pin_locked() const { return (flags & CKF_USER_PIN_LOCKED) != 0; }
  bool pin_final_try() const { return (flags & CKF_USER_PIN_FINAL_TRY) != 0; }
  bool pin_count_low() const { return (flags & CKF_USER_PIN_COUNT_LOW) != 0; }
  // "pkcs11:model=...;manufacturer=...;serial=...;token=..."
  std::string Uri() const;
};

// Checks that nobody but root and the running user can change what loading `path` runs: the
// directory holding the name, the file it resolves to (symlinks followed) and that file's
// directory must be owned by root or the effective user and writable neither by others nor by a
// group other than root's. kPermissionDenied naming the offending path and why; kNotFound when
// the module does not exist.
Status CheckModuleFileTrusted(const std::string& path);

// What a module says about itself (CK_INFO, blank padding trimmed).
struct ModuleInfo {
  std::string manufacturer;
  std::string description;
  std::string cryptoki_version;  // "2.40"
  std::string library_version;   // "2.6"
};

class Module final {
 public:
  // Loads the module at `path` and initializes it with CKF_OS_LOCKING_OK. `init_args`, when not
  // empty, is passed as CK_C_INITIALIZE_ARGS.pReserved (a NUL-terminated string: NSS softokn needs
  // its "configdir='sql:DIR' ..." parameters there); CheckModuleInitArgs must have accepted it. A
  // module that another user in this process (pkcs11-provider) already initialized is accepted.
  // Fails with kNotFound when the file does not exist, kPermissionDenied when
  // CheckModuleFileTrusted refuses it (before dlopen), kInvalidArgument when it is not a PKCS#11
  // module.
  static Result<std::unique_ptr<Module>> Load(const std::string& path, const std::string& init_args);
  static Result<std::unique_ptr<Module>> Load(const std::string& path) { return Load(path, std::string()); }

  Module(const Module&) = delete;  // owns the dlopen handle and the C_Initialize
  Module& operator=(const Module&) = delete;
  // Calls C_Finalize (if this object initialized the module) and dlclose. Never throws.
  ~Module();

  CK_FUNCTION_LIST* fn() const { return fn_; }
  const std::string& path() const { return path_; }
  const std::string& init_args() const { return init_args_; }

  // C_GetInfo.
  Result<ModuleInfo> Info() const;

  // Lists the tokens present in the module's slots (initialized or not).
  Result<std::vector<TokenInfo>> ListTokens() const;

  // Finds the one initialized token matching the token attributes of `uri`. With no token
  // attributes, succeeds only when exactly one initialized token exists. Errors name what was
  // searched for and what exists.
  Result<TokenInfo> FindToken(const Pkcs11Uri& uri) const;

  // Initializes the first free (uninitialized) slot's token with `label`, the SO PIN, and sets the
  // user PIN (C_InitToken, C_Login(SO), C_InitPIN). kAlreadyExists if a token with that label exists.
  // PINs outside the token's ulMinPinLen..ulMaxPinLen are refused before anything is changed.
  // `factory_so_pin`, when given, is the SO PIN the token has now (openCryptoki's C_InitToken checks
  // its factory default "87654321"): C_InitToken uses it and the SO PIN is then changed to `so_pin`
  // (C_SetPIN). Tokens that ignore the label (NSS softokn keeps "NSS Certificate DB") are found
  // again by their slot. An empty `so_pin` is for tokens without an SO PIN (NSS softokn: the SO
  // logs in with an empty PIN to set the user PIN, which becomes the database password).
  Result<TokenInfo> InitToken(const std::string& label, const Pin& so_pin, const Pin& user_pin,
                              const Pin* factory_so_pin = nullptr);

 private:
  struct Private {};  // only Load() constructs

 public:
  Module(Private, std::string path, std::string init_args, void* handle, CK_FUNCTION_LIST* fn, bool finalize)
      : path_(std::move(path)), init_args_(std::move(init_args)), handle_(handle), fn_(fn), finalize_(finalize) {}

 private:
  std::string path_;
  std::string init_args_;
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* fn_ = nullptr;
  bool finalize_ = false;
};

// Checks a module-init-args value: printable ASCII, at most 1024 bytes, and nothing that looks like
// a secret (a "pin", "password", "passphrase" or "secret" parameter): PINs come only from a PIN
// source, never from a config value that is copied into the provider's configuration.
Status CheckModuleInitArgs(const std::string& init_args);

}  // namespace kubehsm::hsm
