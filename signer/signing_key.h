// A private key as the signer layer sees it: an OpenSSL EVP_PKEY, either software or backed by a
// PKCS#11 token through pkcs11-provider, plus the OSSL_LIB_CTX whose providers implement it. The
// signer layer never sees PKCS#11; a token key and a software key work the same way here.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <openssl/evp.h>

#include "common/key_type.h"
#include "common/ssl_ptr.h"
#include "common/status.h"

namespace kubehsm::signer {

class SigningKey final {
 public:
  // Takes ownership of `pkey` (a private key). `libctx` is borrowed and must outlive the key;
  // nullptr means OpenSSL's default context. Fails when the key is neither RSA (2048, 3072, 4096
  // bits) nor EC on P-256/P-384/P-521, or when its public half cannot be exported.
  static Result<SigningKey> Create(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx);

  // Generates a software key of `type` in OpenSSL's default context (for leaf keys and tests).
  static Result<SigningKey> GenerateSoftware(KeyType type);

  SigningKey(SigningKey&&) = default;
  SigningKey& operator=(SigningKey&&) = default;

  // Signs `data` with DefaultDigestName(type()): PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC.
  // Safe to call from many threads at once.
  Result<std::string> Sign(std::string_view data) const;

  KeyType type() const { return type_; }
  // The private key, borrowed; with libctx() it feeds X509_sign_ctx / EVP_DigestSignInit_ex.
  EVP_PKEY* pkey() const { return pkey_.get(); }
  OSSL_LIB_CTX* libctx() const { return libctx_; }
  // A software copy of the public key in the default context: verify with this, never with pkey().
  EVP_PKEY* public_key() const { return public_key_.get(); }
  // The PKIX SubjectPublicKeyInfo DER of the public key.
  const std::string& spki_der() const { return spki_der_; }

 private:
  SigningKey(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx, EvpPkeyPtr public_key, std::string spki, KeyType type)
      : pkey_(std::move(pkey)),
        libctx_(libctx),
        public_key_(std::move(public_key)),
        spki_der_(std::move(spki)),
        type_(type) {}

  EvpPkeyPtr pkey_;
  OSSL_LIB_CTX* libctx_ = nullptr;
  EvpPkeyPtr public_key_;
  std::string spki_der_;
  KeyType type_;
};

// Determines the KeyType of a public or private key; fails for unsupported algorithms/sizes.
Result<KeyType> KeyTypeOf(const EVP_PKEY* key);

// Parses a PKIX SubjectPublicKeyInfo (DER) into a software public key.
Result<EvpPkeyPtr> ParseSpkiDer(std::string_view der);

// Verifies a signature made by SigningKey::Sign for the same key type, in software.
// Returns OK, or kPermissionDenied("signature does not verify").
Status VerifySignature(const EVP_PKEY* public_key, KeyType type, std::string_view data, std::string_view signature);

}  // namespace kubehsm::signer
