// A logged-in PKCS#11 token: one long-lived login session, a pool of operation sessions, key
// generation with explicit templates, key lookup, attribute reads and raw C_Sign.
//
// Login state in PKCS#11 belongs to the application, not to a session (PKCS#11 2.40 §5.6): the
// login session is kept open for the Token's lifetime so the state survives, and C_Logout is never
// called while pkcs11-provider (which shares this login) may hold keys.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/key_type.h"
#include "common/status.h"
#include "hsm/module.h"
#include "hsm/pin.h"
#include "hsm/pkcs11.h"
#include "hsm/uri.h"

namespace kubehsm::hsm {

// A key pair (or a lone public key) in the token and the security attributes that prove how it
// was made.
struct KeyInfo {
  std::string label;  // CKA_LABEL, shared by both halves
  std::string id;     // CKA_ID (raw bytes), shared by both halves
  KeyType type = KeyType::kRsa2048;
  CK_OBJECT_HANDLE private_handle = CK_INVALID_HANDLE;  // CK_INVALID_HANDLE for public-only keys
  CK_OBJECT_HANDLE public_handle = CK_INVALID_HANDLE;
  // Private-key attributes (all false for public-only keys).
  bool sensitive = false;
  bool always_sensitive = false;
  bool extractable = false;
  bool never_extractable = false;
  bool local = false;
  bool can_sign = false;

  bool has_private() const { return private_handle != CK_INVALID_HANDLE; }
  // True when the private key can never leave the token (sensitive and never extractable since
  // creation) and, with `require_local`, was generated in it (CKA_LOCAL).
  bool non_exportable(bool require_local = true) const {
    return sensitive && always_sensitive && !extractable && never_extractable && (local || !require_local);
  }
};

// How a token signs with a key type: in one step with the combined hash-and-sign mechanism
// (CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA256, ...), or over a digest computed outside the token with
// the raw mechanism (CKM_RSA_PKCS over DigestInfo, CKM_ECDSA).
struct SignCapability {
  bool combined = true;
  CK_MECHANISM_TYPE mechanism = CKM_SHA256_RSA_PKCS;
  std::string mechanism_name;  // "CKM_SHA256_RSA_PKCS"
};

// The PKCS#11 name of a mechanism kubehsm uses ("CKM_ECDSA_SHA256"), or its number in hex.
std::string MechanismName(CK_MECHANISM_TYPE mechanism);

// A session borrowed from the Token's pool; returned to the pool when destroyed.
class PooledSession;

class Token final {
 public:
  struct Options {
    std::size_t max_idle_sessions = 16;  // sessions kept open for reuse (>= signer threads)
    // Refuse private keys whose CKA_LOCAL is false (not provably generated in the token).
    bool require_cka_local = true;
  };

  // Opens `info`'s token in `module` and logs in as CKU_USER with `pin`. A token already logged in
  // by this process is accepted. A locked PIN is reported without trying. Exactly one C_Login is
  // attempted: a wrong PIN is one clear kUnauthenticated error and never a retry.
  static Result<std::unique_ptr<Token>> Open(Module& module, const TokenInfo& info, const Pin& pin,
                                             const Options& options);
  static Result<std::unique_ptr<Token>> Open(Module& module, const TokenInfo& info, const Pin& pin) {
    return Open(module, info, pin, Options{});
  }

  Token(const Token&) = delete;  // owns sessions on the token
  Token& operator=(const Token&) = delete;
  // Closes every session it opened (this ends the login when no one else holds a session).
  ~Token();

  const TokenInfo& info() const { return info_; }
  Module& module() const { return module_; }
  const Options& options() const { return options_; }

  // The token's mechanisms with their flags and key sizes (C_GetMechanismList and
  // C_GetMechanismInfo, read once when the token opened).
  const std::map<CK_MECHANISM_TYPE, CK_MECHANISM_INFO>& mechanisms() const { return mechanisms_; }

  // How this token signs with a `type` key: the combined mechanism when the token has it with
  // CKF_SIGN, else the raw one. kFailedPrecondition naming both mechanisms when it has neither.
  Result<SignCapability> SignCapabilityFor(KeyType type) const;

  // OK when the token can generate a `type` key pair and sign with it: the key-pair mechanism with
  // CKF_GENERATE_KEY_PAIR and a key size in its range (RSA modulus bits; EC field bits), and a
  // signing mechanism. Otherwise kFailedPrecondition naming what is missing. Nothing is generated.
  Status CheckCanGenerate(KeyType type) const;

  // Generates a key pair in the token: private half CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE=true,
  // CKA_EXTRACTABLE=false, CKA_SIGN=true, DECRYPT/UNWRAP/DERIVE=false; public half CKA_TOKEN,
  // CKA_PRIVATE=false, CKA_WRAP=false and no usage flags of its own (a TPM derives the public
  // half's usages from the private half's and refuses a template that disagrees); the same
  // CKA_LABEL and a fresh random CKA_ID on both. Refuses up front (CheckCanGenerate) what the
  // token cannot do. kAlreadyExists when any object already has `label`. Reads the attributes back
  // and fails (destroying the pair) if the token did not honour the private template.
  Result<KeyInfo> GenerateKeyPair(const std::string& label, KeyType type);

  // Stores a public key (PKIX SubjectPublicKeyInfo DER) as a token object labelled `label`.
  Result<KeyInfo> ImportPublicKey(const std::string& label, const std::string& spki_der);

  // Lists private keys (with their public halves, matched by CKA_ID) and public-only keys,
  // ordered by label. Keys of unsupported types are skipped; any token error (e.g. CKR_DEVICE_ERROR
  // from C_FindObjects or C_GetAttributeValue) fails the whole listing, never a shorter list.
  Result<std::vector<KeyInfo>> ListKeys();

  // Finds the key selected by `uri`'s object (label), id and type attributes. kNotFound when
  // none matches, kInvalidArgument when several do.
  Result<KeyInfo> FindKey(const Pkcs11Uri& uri);
  Result<KeyInfo> FindKeyByLabel(const std::string& label);

  // The PKIX SubjectPublicKeyInfo DER of `key`, built from CKA_MODULUS/CKA_PUBLIC_EXPONENT or
  // CKA_EC_PARAMS/CKA_EC_POINT.
  Result<std::string> PublicKeyDer(const KeyInfo& key);

  // Reads one attribute's raw value. The token's refusal to reveal a sensitive value
  // (CKR_ATTRIBUTE_SENSITIVE) is kPermissionDenied.
  Result<std::string> GetAttribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);

  // Changes CKA_LABEL of both halves of `key`.
  Status SetLabel(const KeyInfo& key, const std::string& new_label);

  // Destroys both halves of `key`.
  Status DestroyKey(const KeyInfo& key);

  // Signs a message digest with the private half in the token with one C_Sign: CKM_RSA_PKCS over
  // DigestInfo(digest) for RSA (PKCS#1 v1.5), CKM_ECDSA for EC (raw r||s, as PKCS#11 returns
  // it). `digest_name` is "SHA256", "SHA384" or "SHA512". Thread-safe (one pooled session per call).
  Result<std::string> SignDigest(const KeyInfo& key, std::string_view digest_name, std::string_view digest);

  // Checks that the token is present and this process is still logged in (C_GetTokenInfo and
  // C_GetSessionInfo on the login session). kUnavailable when the device is gone or errs,
  // kUnauthenticated when the login was lost (e.g. a C_Logout or C_CloseAllSessions elsewhere in the
  // process). Cheap enough to call after every failed signature.
  Status CheckHealth();

  // The URI of `key`'s private half (or public half for public-only keys) in this token.
  std::string KeyUri(const KeyInfo& key) const;

 private:
  friend class PooledSession;
  struct Private {};

 public:
  Token(Private, Module& module, TokenInfo info, CK_SESSION_HANDLE login_session, const Options& options,
        std::map<CK_MECHANISM_TYPE, CK_MECHANISM_INFO> mechanisms)
      : module_(module),
        info_(std::move(info)),
        login_session_(login_session),
        options_(options),
        mechanisms_(std::move(mechanisms)) {}

 private:
  // Returns a session from the pool, opening a new one when none is idle.
  Result<PooledSession> Acquire();
  void Release(CK_SESSION_HANDLE s, bool healthy);
  Result<std::vector<CK_OBJECT_HANDLE>> FindObjects(CK_SESSION_HANDLE s, const std::vector<CK_ATTRIBUTE>& tmpl);
  // Reads `priv`/`pub`'s attributes. A key kubehsm does not support (type, size, curve) is
  // kInvalidArgument with its reason also stored in `*unsupported` (when given); any token error is
  // returned as such.
  Result<KeyInfo> Describe(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
                           std::string* unsupported = nullptr);
  Result<std::vector<KeyInfo>> ListKeysLocked(CK_SESSION_HANDLE s);
  // kInvalidArgument for a bad label, kAlreadyExists when any token object carries it.
  Status CheckLabelFreeLocked(CK_SESSION_HANDLE s, const std::string& label);

  Module& module_;
  TokenInfo info_;
  CK_SESSION_HANDLE login_session_;
  Options options_;
  std::map<CK_MECHANISM_TYPE, CK_MECHANISM_INFO> mechanisms_;
  std::mutex pool_mu_;
  std::vector<CK_SESSION_HANDLE> idle_;
  // Serialises key creation against object searches (SoftHSM 2.6.1 races, SoftHSMv2#576).
  std::mutex objects_mu_;
};

class PooledSession final {
 public:
  PooledSession(Token* token, CK_SESSION_HANDLE handle) : token_(token), handle_(handle) {}
  PooledSession(PooledSession&& o) noexcept
      : token_(std::exchange(o.token_, nullptr)), handle_(o.handle_), healthy_(o.healthy_) {}
  PooledSession& operator=(PooledSession&&) = delete;
  PooledSession(const PooledSession&) = delete;  // exactly one holder returns the session
  PooledSession& operator=(const PooledSession&) = delete;
  ~PooledSession() {
    if (token_ != nullptr) token_->Release(handle_, healthy_);
  }
  CK_SESSION_HANDLE get() const { return handle_; }
  // Marks the session broken (closed instead of returned to the pool).
  void MarkBroken() { healthy_ = false; }

 private:
  Token* token_;
  CK_SESSION_HANDLE handle_;
  bool healthy_ = true;
};

}  // namespace kubehsm::hsm
