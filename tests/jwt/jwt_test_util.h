// Helpers shared by the signer/jwt unit tests.
#pragma once

#include <cstdint>
#include <string>

#include "signer/jwt/claims.h"
#include "signer/signing_key.h"

namespace kubehsm::jwt::testing {

inline constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
inline constexpr char kIssuer[] = "https://kubernetes.default.svc.cluster.local";

// A pod-bound request for default/builder with pod and node.
BoundTokenRequest PodBoundRequest();

// PEM "PUBLIC KEY" text for SubjectPublicKeyInfo DER.
std::string SpkiToPem(const std::string& spki_der);

// Signs header/payload JSON texts as given (raw r‖s for EC) to build arbitrary test tokens.
std::string CraftToken(const std::string& header_json, const std::string& payload_json, const signer::SigningKey& key);

// Replaces the character at `pos` by a different base64url character.
std::string ChangeCharAt(std::string token, std::size_t pos);

// Runs tests/jwt/pyjwt_verify.py with the token and JWKS; returns its exit code, appending its
// output to `output`.
int PyJwtVerify(const std::string& token, const std::string& jwks_json, const std::string& issuer,
                const std::string& audience, std::string* output = nullptr);

}  // namespace kubehsm::jwt::testing
