// Key IDs for service-account keys, derived exactly as kube-apiserver derives them for in-tree
// keys (pkg/serviceaccount/jwt.go keyIDFromPublicKey): base64url, unpadded, of SHA-256 over the
// PKIX SubjectPublicKeyInfo DER of the public key. Always 43 characters.
#pragma once

#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "common/status.h"

namespace kubehsm::jwt {

// The kid of the public key whose SubjectPublicKeyInfo DER is `spki_der`. Does not parse the DER;
// fails only if hashing fails (kInternal).
Result<std::string> KidFromSpki(std::string_view spki_der);

// The kid of `key` (public or private; only the public half is encoded). kInternal if the key
// cannot be encoded as SubjectPublicKeyInfo.
Result<std::string> KidOf(const EVP_PKEY* key);

// True when `kid` has the shape of a derived kid (43 base64url characters).
bool LooksLikeDerivedKid(std::string_view kid);

}  // namespace kubehsm::jwt
