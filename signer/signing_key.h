// A private key as the signer layer sees it: an OpenSSL EVP_PKEY, either software or backed by a
// PKCS#11 token through pkcs11-provider, plus the OSSL_LIB_CTX whose providers implement it. The
// signer layer never sees PKCS#11; a token key and a software key work the same way here.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include <openssl/evp.h>

#include "common/key_type.h"
#include "common/ssl_ptr.h"
#include "common/status.h"

namespace kubehsm::signer {

// Signs a message digest in the key's store when the store cannot hash and sign in one step (a
// PKCS#11 token without the combined mechanism). `digest_name` is "SHA256", "SHA384" or "SHA512".
// Returns, for RSA, the PKCS#1 v1.5 signature over DigestInfo(digest) (RFC 8017 §8.2.1), and for
// EC the raw r||s, each half padded to the curve's size (the PKCS#11 CKM_ECDSA form).
using DigestSigner = std::function<Result<std::string>(std::string_view digest_name, std::string_view digest)>;

class SigningKey final {
 public:
  struct Options {
    // When set, Sign hashes in software and calls this instead of EVP_DigestSign on the key.
    DigestSigner digest_signer;
    // Where the key lives and how it signs, for error messages, e.g.
    // "key 'kubehsm-ca' in token 'kubehsm' (CKM_SHA256_RSA_PKCS)". Empty for software keys.
    std::string origin;
  };

  // Takes ownership of `pkey` (a private key). `libctx` is borrowed and must outlive the key;
  // nullptr means OpenSSL's default context. Fails when the key is neither RSA (2048, 3072, 4096
  // bits) nor EC on P-256/P-384/P-521, or when its public half cannot be exported.
  static Result<SigningKey> Create(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx, Options options);
  static Result<SigningKey> Create(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx) {
    return Create(std::move(pkey), libctx, Options{});
  }

  // Generates a software key of `type` in OpenSSL's default context (for leaf keys and tests).
  static Result<SigningKey> GenerateSoftware(KeyType type);

  SigningKey(SigningKey&&) = default;
  SigningKey& operator=(SigningKey&&) = default;

  // Signs `data` with DefaultDigestName(type()): PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC.
  // Every signature is verified in software against public_key() before it is returned: a key
  // store that returns a wrong signature (e.g. a token signing a bare digest without its
  // DigestInfo) is kInternal naming origin(), and no signature is returned. Safe to call from many
  // threads at once.
  Result<std::string> Sign(std::string_view data) const;

  KeyType type() const { return type_; }
  // The private key, borrowed; with libctx() it feeds X509_sign_ctx / EVP_DigestSignInit_ex.
  EVP_PKEY* pkey() const { return pkey_.get(); }
  OSSL_LIB_CTX* libctx() const { return libctx_; }
  // A software copy of the public key in the default context: verify with this, never with pkey().
  EVP_PKEY* public_key() const { return public_key_.get(); }
  // The PKIX SubjectPublicKeyInfo DER of the public key.
  const std::string& spki_der() const { return spki_der_; }
  // Where the key lives and how it signs ("" for software keys).
  const std::string& origin() const { return options_.origin; }

 private:
  SigningKey(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx, EvpPkeyPtr public_key, std::string spki, KeyType type,
             Options options)
      : pkey_(std::move(pkey)),
        libctx_(libctx),
        public_key_(std::move(public_key)),
        spki_der_(std::move(spki)),
        type_(type),
        options_(std::move(options)) {}

  Result<std::string> SignUnchecked(std::string_view data) const;

  EvpPkeyPtr pkey_;
  OSSL_LIB_CTX* libctx_ = nullptr;
  EvpPkeyPtr public_key_;
  std::string spki_der_;
  KeyType type_;
  Options options_;
};

// Byte length of a raw ECDSA r‖s signature for an EC key type (64, 96, 132); 0 for RSA.
std::size_t EcdsaRawSignatureSize(KeyType type);

// Converts a DER ECDSA-Sig-Value (what OpenSSL and SigningKey::Sign produce) to the fixed-length
// r‖s form RFC 7518 §3.4 requires, each half left-padded with zeros. kInvalidArgument when the
// DER is malformed, has trailing bytes, or r/s do not fit the curve size; for RSA types.
Result<std::string> EcdsaDerToRaw(std::string_view der, KeyType type);

// The reverse: raw r‖s of exactly EcdsaRawSignatureSize(type) bytes to DER. kInvalidArgument on a
// wrong length (go-jose's "invalid signature size").
Result<std::string> EcdsaRawToDer(std::string_view raw, KeyType type);


// Determines the KeyType of a public or private key; fails for unsupported algorithms/sizes.
Result<KeyType> KeyTypeOf(const EVP_PKEY* key);

// Parses a PKIX SubjectPublicKeyInfo (DER) into a software public key.
Result<EvpPkeyPtr> ParseSpkiDer(std::string_view der);

// Verifies a signature made by SigningKey::Sign for the same key type, in software.
// Returns OK, or kPermissionDenied("signature does not verify").
Status VerifySignature(const EVP_PKEY* public_key, KeyType type, std::string_view data, std::string_view signature);

}  // namespace kubehsm::signer
