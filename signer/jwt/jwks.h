// kube-apiserver's OIDC documents for service-account issuers (spec §4): the JWKS served at
// /openid/v1/jwks and the discovery document at /.well-known/openid-configuration, rendered
// byte-compatibly with pkg/routes + go-jose; and a JWKS parser for verifying with a downloaded set.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "signer/jwt/verify.h"

namespace kubehsm::jwt {

// A key to publish: its kid and PKIX SubjectPublicKeyInfo DER.
struct PublishedKey {
  std::string kid;
  std::string spki_der;
};

// Renders {"keys":[...]}, compact, one JWK per key in the given order, members in go-jose's order:
// use ("sig"), kty, kid, crv (EC), alg, then x, y (EC, left-padded to the curve size) or n, e
// (RSA, minimal big-endian). kFailedPrecondition when `keys` is empty (kube-apiserver installs no
// endpoint then); kInvalidArgument for an unparsable or unsupported key.
Result<std::string> RenderJwks(const std::vector<PublishedKey>& keys);

// Checks an issuer as kube-apiserver does before serving discovery: an https URL with a host and
// no query or fragment. kInvalidArgument otherwise.
Status ValidateDiscoveryIssuer(std::string_view issuer);

// The jwks_uri used when none is given: `<issuer without trailing '/'>/openid/v1/jwks`.
std::string DefaultJwksUri(std::string_view issuer);

// Renders the discovery document, compact, fields in kube-apiserver's order: issuer, jwks_uri,
// response_types_supported ["id_token"], subject_types_supported ["public"],
// id_token_signing_alg_values_supported (sorted, de-duplicated algs of `keys`). `jwks_uri` must be
// https too. kInvalidArgument for a bad issuer/jwks_uri or key, kFailedPrecondition for no keys.
Result<std::string> RenderDiscovery(std::string_view issuer, std::string_view jwks_uri,
                                    const std::vector<PublishedKey>& keys);

// Parses a JWKS document into verification keys. Keys with "use" other than "sig" and key types
// other than RSA and EC are skipped; a JWK without "kid" gets the derived kid. kInvalidArgument for
// invalid JSON, a malformed RSA/EC key (EC coordinates must be exactly the curve size and on the
// curve), or when no usable key remains.
Result<std::vector<VerificationKey>> ParseJwks(std::string_view json_text);

}  // namespace kubehsm::jwt
