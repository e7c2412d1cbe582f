// JWS compact serialization (RFC 7515) over a signer::SigningKey, restricted to what Kubernetes
// accepts for service-account tokens: RS256, ES256, ES384, ES512 (RFC 7518 §3.1), with the alg
// derived from the key (RSA → RS256, P-256/P-384/P-521 → ES256/ES384/ES512).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "common/key_type.h"
#include "common/status.h"
#include "signer/signing_key.h"

namespace kubehsm::jwt {

// The JWS algorithms kube-apiserver's allowlist accepts. Nothing else is representable, so
// "none", HS*, PS*, RS384/512 and EdDSA can never be produced or accepted.
enum class JwsAlgorithm { kRs256, kEs256, kEs384, kEs512 };

// "RS256", "ES256", "ES384", "ES512".
std::string_view JwsAlgorithmName(JwsAlgorithm alg);

// Parses an allowlisted alg name, exactly and case-sensitively (RFC 7515 §4.1.1 values are
// case-sensitive). nullopt for everything else, including "none", "HS256" and "PS256".
std::optional<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name);

// The alg kube-apiserver's in-tree signer pairs with a key type (§3.7 of the spec).
JwsAlgorithm JwsAlgorithmFor(KeyType type);

// True when a token with `alg` may be verified with a key of `type` (RS256 with any RSA size,
// ESxxx only with its own curve).
bool JwsAlgorithmMatches(JwsAlgorithm alg, KeyType type);

// ECDSA r‖s <-> DER conversions (RFC 7518 §3.4), shared with the signer layer.
using signer::EcdsaDerToRaw;
using signer::EcdsaRawSignatureSize;
using signer::EcdsaRawToDer;

// The protected header kubehsm emits, exactly {"alg":"<alg>","kid":"<kid>","typ":"JWT"}, compact,
// keys in that (alphabetical) order.
std::string JwsHeaderJson(JwsAlgorithm alg, std::string_view kid);

// The first and third JWS segments (both base64url, unpadded), as ExternalJWTSigner's Sign
// returns them.
struct SignedParts {
  std::string header;     // base64url(JwsHeaderJson(...))
  std::string signature;  // base64url(signature; raw r‖s for ECDSA)
};

// Signs already-encoded claims as ExternalJWTSigner/Sign must: the signing input is
// `header "." claims_b64url`, with `claims_b64url` used verbatim (never re-encoded). Fails with
// kInvalidArgument if `kid` is empty or longer than 1024 bytes, or if `claims_b64url` is not strict
// unpadded base64url of a JSON object (this catches claims encoded twice, issue #141670).
// Errors from the key (e.g. the token) are returned as they are.
Result<SignedParts> SignEncodedClaims(const signer::SigningKey& key, std::string_view kid,
                                      std::string_view claims_b64url);

// Returns the compact token `header.payload.signature` for the claims JSON text `claims_json`
// (encoded exactly as given). Same failures as SignEncodedClaims.
Result<std::string> SignCompact(const signer::SigningKey& key, std::string_view kid, std::string_view claims_json);

// Verifies `signature` (the decoded third segment: raw r‖s for ECDSA, PKCS#1 v1.5 for RSA) over
// `signing_input` with a software public key of `key_type`. kFailedPrecondition when `alg` does not
// match the key type, kPermissionDenied when the signature does not verify (including an ECDSA
// signature of the wrong length).
Status VerifyJwsSignature(JwsAlgorithm alg, const EVP_PKEY* public_key, KeyType key_type,
                          std::string_view signing_input, std::string_view signature);

}  // namespace kubehsm::jwt
