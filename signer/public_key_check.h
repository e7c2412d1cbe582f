// The one check every public key that enters kubehsm from outside goes through: the subject key of
// a CSR, an imported sa.pub (`sa import-public`), and the keys `sa verify` trusts (--public-key,
// --jwks). It rejects keys whose math makes a signature or a proof of possession meaningless, before
// any policy (sizes, allowed curves) is applied:
//  - RSA: the public exponent must be odd and at least 65537 (F4) and at most 2^31 - 1. Go accepts
//    any e >= 2 (and at most 2^31 - 1); kubehsm is stricter on purpose: e = 1 makes "signatures"
//    that anyone can forge (s = m), small exponents have a history of attacks, and every RSA key a
//    real tool generates (OpenSSL, Go, kubeadm, HSMs) uses 65537.
//  - EC: only a named curve (RFC 5480 §2.1.1: "namedCurve" is the only form allowed in PKIX);
//    explicit curve parameters are refused even when they spell out a named curve, and the point
//    must be on the curve.
#pragma once

#include <optional>
#include <string>

#include <openssl/evp.h>

#include "common/status.h"

namespace kubehsm::signer {

// The smallest RSA public exponent kubehsm accepts (F4).
inline constexpr unsigned long kMinRsaPublicExponent = 65537;

// The problem with `key` as a complete phrase ("RSA public exponent 1 is not allowed (it must be
// odd and at least 65537)", "EC key with explicit curve parameters (only named curves, RFC 5480)")
// or nullopt when the key is acceptable. Key types other than RSA and EC are not judged here (the
// caller's policy decides whether it takes them at all). Never fails otherwise.
std::optional<std::string> PublicKeyProblem(const EVP_PKEY* key);

// PublicKeyProblem as a Status: OK, or kInvalidArgument "weak key: <problem>".
Status CheckPublicKey(const EVP_PKEY* key);

}  // namespace kubehsm::signer
