// Verifies service-account tokens the way kube-apiserver's service-account authenticator does
// (pkg/serviceaccount/jwt.go, claims.go; spec §3.5), minus the live object lookups only the API
// server can make: issuer first, keys chosen by kid, alg allowlist, signature, audience
// intersection, then exp/nbf/iat with a leeway, then the `kubernetes.io` claims into an identity.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/key_type.h"
#include "common/ssl_ptr.h"
#include "common/status.h"
#include "signer/jwt/jws.h"

namespace kubehsm::jwt {

// A public key that may verify tokens, with the kid it is published under.
struct VerificationKey {
  std::string kid;
  KeyType type;
  EvpPkeyPtr public_key;  // software key in OpenSSL's default context (owned)
};

// Builds a verification key from PKIX SubjectPublicKeyInfo DER. An empty `kid` means the derived
// kid (kid.h). kInvalidArgument for unparsable DER, unsupported key types/sizes, or a key
// signer::CheckPublicKey refuses (RSA e < 65537 or even, explicit EC parameters).
Result<VerificationKey> VerificationKeyFromSpki(std::string_view spki_der, std::string kid = {});

// Builds a verification key from a PEM "PUBLIC KEY" block (an sa.pub file), with the derived kid.
// kInvalidArgument when the text holds no parsable public key, an unsupported type, or a key
// signer::CheckPublicKey refuses.
Result<VerificationKey> VerificationKeyFromPem(std::string_view pem);

// Why a token was refused. Each reason is distinct so callers (the CLI's exit codes) can tell them
// apart.
enum class TokenError {
  kNone = 0,
  kMalformed,              // not three base64url parts of JSON objects, bad claim types, no kubernetes.io
  kWrongIssuer,            // `iss` absent or not one of the accepted issuers
  kDisallowedAlgorithm,    // alg not RS256/ES256/ES384/ES512 (e.g. none, HS256, PS256)
  kUnknownKid,             // no key has the token's kid ("invalid signature, no keys found")
  kAlgorithmKeyMismatch,   // every candidate key has a type the alg cannot use
  kInvalidSignature,       // no candidate key verifies the signature
  kWrongAudience,          // token audiences do not intersect the accepted audiences
  kExpired,                // now - leeway > exp
  kNotYetValid,            // now + leeway < nbf
  kIssuedInFuture,         // now + leeway < iat
};

// "malformed", "wrong issuer", ... (stable, lower case).
std::string_view TokenErrorName(TokenError error);

struct VerifyOptions {
  std::vector<std::string> issuers;    // accepted `iss` values; must not be empty
  std::vector<std::string> audiences;  // accepted audiences; empty means `issuers` (kube's default)
  int64_t now = 0;                     // Unix seconds
  int64_t leeway_seconds = 60;         // go-jose's DefaultLeeway
};

// The user kube-apiserver would authenticate (ServiceAccountInfo.UserInfo) and token facts.
struct ServiceAccountIdentity {
  std::string username;  // system:serviceaccount:<ns>:<name>
  std::string uid;       // the service account's uid
  std::vector<std::string> groups;  // system:serviceaccounts, system:serviceaccounts:<ns>, system:authenticated
  std::map<std::string, std::vector<std::string>> extra;  // authentication.kubernetes.io/{pod-name,...}
  std::string namespace_name;
  std::string service_account_name;
  std::vector<std::string> audiences;  // the intersection that was accepted
  std::string issuer;
  std::string kid;                     // the kid of the key that verified the token
  JwsAlgorithm algorithm = JwsAlgorithm::kRs256;
  std::optional<int64_t> expires_at, issued_at, not_before;
  std::string jti;
};

// The outcome: error kNone and an identity, or the reason and a one-line message.
struct VerifyResult {
  TokenError error = TokenError::kNone;
  std::string message;
  ServiceAccountIdentity identity;  // meaningful only when ok()
  bool ok() const { return error == TokenError::kNone; }
};

// Verifies compact `token` (no surrounding whitespace) against `keys`. Never throws; every failure
// is a TokenError with a message. Order, as kube-apiserver: structure, issuer, alg allowlist, keys
// by kid (all keys when the token has no kid; several keys may share a kid and each is tried),
// signature, audience, time claims, kubernetes.io claims. Stricter than Go in one respect: base64url
// with non-zero spare bits or '=' padding is malformed.
VerifyResult VerifyServiceAccountToken(std::string_view token, const std::vector<VerificationKey>& keys,
                                       const VerifyOptions& options);

}  // namespace kubehsm::jwt
